// ninefold: one executable, one subcommand per job.
#include "CLI/CLI.hpp"
#include "tools/ninefold/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "ninefold: a 9P (9P2000, 9P2000.u, 9P2000.L) communications stack.\n"
      "Run 'ninefold COMMAND --help' for a command's options."};
  app.set_version_flag("--version", "ninefold 0.1.0");
  app.require_subcommand(1);
  int exit_code = 0;
  ninefold::tools::AddDecodeCommand(app, &exit_code);
  ninefold::tools::AddServeCommand(app, &exit_code);
  ninefold::tools::AddMountCommand(app, &exit_code);
  ninefold::tools::AddClientCommands(app, &exit_code);
  ninefold::tools::AddBenchCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // usage errors exit 2, like coreutils
  }
  return exit_code;
}
