// Each `ninefold` subcommand registers itself on the top-level CLI11 app and stores the
// exit code of its run in *exit_code.
#ifndef NINEFOLD_TOOLS_NINEFOLD_COMMANDS_H_
#define NINEFOLD_TOOLS_NINEFOLD_COMMANDS_H_

#include "CLI/CLI.hpp"

namespace ninefold::tools {

void AddDecodeCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
// ninefold mount: FUSE (mount.cc).
void AddMountCommand(CLI::App& app, int* exit_code);
// ls, cat, put, stat, mkdir, rm, mv (client_cmds.cc).
void AddClientCommands(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);

}  // namespace ninefold::tools

#endif  // NINEFOLD_TOOLS_NINEFOLD_COMMANDS_H_
