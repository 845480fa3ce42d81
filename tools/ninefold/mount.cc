// ninefold mount: a 9P2000.L service as a directory of this host, through FUSE.
#include "ninefold/fuse/mount.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "ninefold/client/fs.h"
#include "tools/ninefold/commands.h"

namespace ninefold::tools {
namespace {

struct MountCommandOptions {
  std::string address;
  std::string mountpoint;
  std::string aname;
  uint32_t msize = 512 * 1024;
  bool foreground = false;
  std::vector<std::string> fuse_options;
  double attr_timeout = 0;
  double entry_timeout = 0;
  bool writeback_cache = false;
  unsigned timeout_seconds = 60;
  unsigned threads = 4;
};

// Dials, attaches and mounts; on success calls `ready` (once the mount is visible), then
// serves until unmounted. Returns the exit status.
int MountAndServe(const MountCommandOptions& opt, const std::function<void(std::string)>& ready) {
  auto fail = [&](const std::string& message) {
    ready(message);
    return 1;
  };
  Result<Link> link = dial(opt.address);
  if (!link) return fail(fmt::format("dial {}: {}", opt.address, link.error().ToString()));
  Result<Fs> root = fsmount(*link, {.aname = opt.aname,
                                    .msize = opt.msize,
                                    .max_outstanding = 256,
                                    .deadline = std::chrono::seconds(opt.timeout_seconds)});
  if (!root) return fail(fmt::format("{}: {}", opt.address, root.error().ToString()));
  fuse::Options fo{.attr_timeout = opt.attr_timeout,
                   .entry_timeout = opt.entry_timeout,
                   .writeback_cache = opt.writeback_cache,
                   .fuse_options = opt.fuse_options,
                   .max_threads = opt.threads};
  Result<std::unique_ptr<fuse::Mount>> m =
      fuse::Mount::Create(root->session(), root->root_fid(), opt.mountpoint, fo);
  if (!m) return fail(m.error().ToString());
  ready("");
  Result<void> served = (*m)->Run();
  m->reset();
  if (!served) {
    fmt::print(stderr, "ninefold mount: {}\n", served.error().ToString());
    return 1;
  }
  return 0;
}

int RunMount(MountCommandOptions opt) {
  std::error_code ec;
  std::filesystem::path mp = std::filesystem::absolute(opt.mountpoint, ec);
  struct stat st;
  if (ec || ::stat(mp.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    fmt::print(stderr, "ninefold mount: {} is not a directory\n", opt.mountpoint);
    return 1;
  }
  opt.mountpoint = mp.string();
  if (opt.foreground) {
    return MountAndServe(opt, [](const std::string& error) {
      if (!error.empty()) fmt::print(stderr, "ninefold mount: {}\n", error);
    });
  }
  // Daemonize before any thread starts: the child dials and mounts and tells the parent
  // through a pipe whether that worked, so the parent's exit status is the mount's.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    fmt::print(stderr, "ninefold mount: pipe: {}\n", std::strerror(errno));
    return 1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    fmt::print(stderr, "ninefold mount: fork: {}\n", std::strerror(errno));
    return 1;
  }
  if (pid > 0) {
    ::close(fds[1]);
    std::string message;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) message.append(buf, static_cast<size_t>(n));
    }
    if (message == "ok") return 0;
    fmt::print(stderr, "ninefold mount: {}\n",
               message.empty() ? "the mount process ended without mounting" : message);
    return 1;
  }
  ::close(fds[0]);
  ::setsid();
  int status_fd = fds[1];
  return MountAndServe(opt, [status_fd](const std::string& error) {
    std::string message = error.empty() ? "ok" : error;
    (void)!::write(status_fd, message.data(), message.size());
    ::close(status_fd);
    if (!error.empty()) return;
    (void)!::chdir("/");
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
  });
}

}  // namespace

void AddMountCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<MountCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "mount",
      "Mount a 9P2000.L service on a directory through FUSE. Runs in the background once\n"
      "mounted (-f: in the foreground); `fusermount3 -u MOUNTPOINT` unmounts. Operations\n"
      "fail with EIO once the server is gone or has not answered for --timeout seconds.");
  cmd->add_option("ADDR", opt->address, "tcp!HOST!PORT, unix!/PATH, shm!/PATH or fd!R!W")
      ->required();
  cmd->add_option("MOUNTPOINT", opt->mountpoint, "an existing directory")->required();
  cmd->add_option("--aname", opt->aname, "the tree to attach (diod: the exported path)");
  cmd->add_option("--msize", opt->msize,
                  "largest message size asked for, 8K to 16M (K, M suffixes; default 512K)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(8192u, 16u << 20));
  cmd->add_flag("-f,--foreground", opt->foreground, "stay in the foreground");
  cmd->add_option("-o", opt->fuse_options,
                  "FUSE mount options, comma-separated, repeatable (e.g. allow_other,ro)");
  cmd->add_option("--attr-timeout", opt->attr_timeout,
                  "seconds the kernel may cache attributes (default 0: always ask)");
  cmd->add_option("--entry-timeout", opt->entry_timeout,
                  "seconds the kernel may cache names (default 0: always ask)");
  cmd->add_flag("--writeback-cache", opt->writeback_cache,
                "let the kernel gather writes in its page cache (default off)");
  cmd->add_option("--timeout", opt->timeout_seconds,
                  "seconds a request may take before it fails with EIO (default 60, 0: none)");
  cmd->add_option("--threads", opt->threads, "threads reading FUSE requests (default 4)")
      ->check(CLI::Range(1u, 64u));
  cmd->callback([opt, exit_code] { *exit_code = RunMount(*opt); });
}

}  // namespace ninefold::tools
