// ninefold serve: export directories, RAM file systems and the ctl tree over 9P.
#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "ninefold/base/log.h"
#include "ninefold/fs/ctl.h"
#include "ninefold/fs/exportfs.h"
#include "ninefold/fs/ramfs.h"
#include "ninefold/fs/readonly.h"
#include "ninefold/server/server.h"
#include "tools/ninefold/commands.h"

namespace ninefold::tools {
namespace {

struct ServeOptions {
  std::vector<std::string> listen;
  std::vector<std::string> exports;
  std::vector<std::string> ramfs;
  bool ctl = false;
  bool read_only = false;
  uint32_t msize = 1u << 20;
  unsigned threads = 8;
  unsigned spin_us = 50;
  unsigned splice_pipes = 16;
  uint32_t shm_queues = 0;
  uint32_t max_fids = 65536;
  uint32_t max_outstanding = 256;
  bool trace = false;
  bool verbose = false;
};

int Fail(const std::string& message) {
  fmt::print(stderr, "ninefold serve: {}\n", message);
  return 1;
}

int RunServe(const ServeOptions& opt) {
  if (opt.verbose) SetLogLevel(LogLevel::kDebug);
  server::ExportTable table;
  auto wrap = [&](std::unique_ptr<fs::FileServer> s) {
    return opt.read_only ? fs::MakeReadOnly(std::move(s)) : std::move(s);
  };
  std::vector<std::string> described;
  for (const std::string& spec : opt.exports) {
    size_t eq = spec.find('=');
    std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(path, ec).lexically_normal();
    std::string name = eq == std::string::npos ? abs.string() : spec.substr(0, eq);
    if (!abs.empty() && abs.string().size() > 1 && abs.string().back() == '/') {
      abs = abs.parent_path();
      if (eq == std::string::npos) name = abs.string();
    }
    auto fs = fs::MakeExportFs(abs.string(), {.read_only = opt.read_only});
    if (!fs) return Fail(fmt::format("--export {}: {}", spec, fs.error().ToString()));
    table.Add(name, std::move(*fs));
    described.push_back(fmt::format("aname '{}' -> directory {}", name, abs.string()));
  }
  for (const std::string& name : opt.ramfs) {
    auto fs = fs::MakeRamFs();
    if (!fs) return Fail(fmt::format("--ramfs {}: {}", name, fs.error().ToString()));
    table.Add(name, wrap(std::move(*fs)));
    described.push_back(fmt::format("aname '{}' -> RAM file system", name));
  }
  if (opt.ctl) {
    table.Add("ctl", wrap(fs::MakeCtlServer()));
    described.push_back("aname 'ctl' -> control files (zero, null, version, date)");
  }
  if (table.empty()) return Fail("nothing to serve: give --export, --ramfs or --ctl");
  if (opt.listen.empty()) return Fail("no address: give --listen ADDR");

  auto server = std::make_unique<server::Server>(
      table, server::ServerOptions{.msize = opt.msize,
                                   .max_fids = opt.max_fids,
                                   .max_outstanding = opt.max_outstanding,
                                   .worker_threads = opt.threads,
                                   .spin = std::chrono::microseconds(opt.spin_us),
                                   .splice_pipes = opt.splice_pipes,
                                   .shm_queues = opt.shm_queues,
                                   .trace = opt.trace});
  server::Server& srv = *server;
  bool only_fd = true;
  std::vector<std::string> bound;
  for (const std::string& dial : opt.listen) {
    auto address = transport::ParseAddress(dial);
    if (!address) return Fail(address.error().ToString());
    auto at = srv.Listen(*address);
    if (!at) return Fail(fmt::format("--listen {}: {}", dial, at.error().ToString()));
    if (at->kind != transport::Address::Kind::kFd) only_fd = false;
    bound.push_back(at->ToString());
  }
  // Serving one inherited connection: exit when it closes, as inetd-style servers do.
  if (only_fd) srv.ExitWhenIdle();
  srv.HandleSignals();
  for (const std::string& d : described) Log(LogLevel::kInfo, "serving {}", d);
  for (const std::string& b : bound) Log(LogLevel::kInfo, "listening on {}", b);
  srv.Run();
  const server::ServerStats& st = srv.stats();
  Log(LogLevel::kInfo,
      "stopped after {} connection(s), {} request(s); read data: {} bytes read, {} spliced, "
      "{} shared as pages, {} piped; write data: {} bytes from pipes",
      st.connections_accepted.load(), st.requests.load(), st.bytes_read.load(),
      st.bytes_spliced.load(), st.bytes_shared.load(), st.bytes_piped.load(),
      st.bytes_written_from_pipes.load());
  // Stopping the server gives SIGINT/SIGTERM back to their default action; the process is
  // leaving, and a second SIGTERM on its way (timeout(1) sends one to the child and one
  // to its group) must not turn a clean exit into a kill.
  // Blocked while the server lets go of them (its threads have ended: this is the only
  // one), ignored after, so a pending one is dropped.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  server.reset();
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve file trees over 9P (9P2000, 9P2000.u and 9P2000.L) until SIGINT/SIGTERM.\n"
      "A client's aname selects an export by NAME (for --export without NAME=, the\n"
      "directory's absolute path, as diod does); an empty aname selects the first one.");
  cmd->add_option("--listen", opt->listen,
                  "address to serve on, repeatable: tcp!HOST!PORT, unix!/PATH, shm!/PATH "
                  "(shared memory for clients on this host, handed over on a Unix socket at "
                  "PATH), or fd!R!W (one connection on inherited descriptors; exits when it "
                  "closes)")
      ->required();
  cmd->add_option("--export", opt->exports, "[NAME=]PATH: export a host directory, repeatable");
  cmd->add_option("--ramfs", opt->ramfs, "NAME: serve an empty RAM file system, repeatable");
  cmd->add_flag("--ctl", opt->ctl, "serve the control files diod's tools use on aname 'ctl'");
  cmd->add_flag("--read-only", opt->read_only, "refuse every modifying operation with EROFS");
  cmd->add_option("--msize", opt->msize,
                  "largest message size offered, 4K to 16M (K, M suffixes; default 1M)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(4096u, 16u << 20));
  cmd->add_option("--threads", opt->threads,
                  "most threads serving at once: one normally, more while calls block or bulk "
                  "transfers saturate a core (default 8)")
      ->check(CLI::Range(1u, 256u));
  cmd->add_option("--spin-us", opt->spin_us,
                  "after its last request the io thread polls this long before sleeping: "
                  "lower latency at one request in flight, for up to that much CPU (default "
                  "50; 0: sleep at once)")
      ->check(CLI::Range(0u, 100000u));
  cmd->add_option("--splice-pipes", opt->splice_pipes,
                  "reads of exported files over tcp (up to 64 KiB) and unix go from file to "
                  "socket inside the kernel (splice), and writes of 16 KiB or more from socket "
                  "to file, through at most this many pipes at once; beyond that they are "
                  "copied (default 16; 0: always copy)")
      ->check(CLI::Range(0u, 1024u));
  cmd->add_option("--shm-queues", opt->shm_queues,
                  "queue pairs per shm! connection, 1 to 4: each client thread sends on its "
                  "own, for clients sending from many threads on many cores (default "
                  "NINEFOLD_SHM_QUEUES, else 1)")
      ->check(CLI::Range(1u, 4u));
  cmd->add_option("--max-fids", opt->max_fids, "fids per connection (default 65536)")
      ->check(CLI::Range(16u, 1u << 24));
  cmd->add_option("--max-outstanding", opt->max_outstanding,
                  "requests in flight per connection before reading pauses (default 256)")
      ->check(CLI::Range(1u, 65535u));
  cmd->add_flag("--trace", opt->trace, "print every 9P message (also NINEFOLD_TRACE=1)");
  cmd->add_flag("-v,--verbose", opt->verbose, "debug logging (also NINEFOLD_LOG=debug)");
  cmd->callback([opt, exit_code] { *exit_code = RunServe(*opt); });
}

}  // namespace ninefold::tools
