// Mount: libfuse session set-up, the request loop and unmounting.
#include "ninefold/fuse/mount.h"

#include <unistd.h>

#include <algorithm>
#include <future>

#include "asio/use_future.hpp"
#include "fmt/format.h"
#include "src/fuse/filesystem.h"

namespace ninefold::fuse {

using internal::Filesystem;

struct Mount::State {
  std::shared_ptr<Filesystem> fs;
  fuse_session* session = nullptr;
  bool mounted = false;
};

namespace {

bool Has(const std::vector<std::string>& options, std::string_view name) {
  for (const std::string& list : options) {
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = std::min(list.find(',', start), list.size());
      if (std::string_view(list).substr(start, end - start) == name) return true;
      start = end + 1;
    }
  }
  return false;
}

}  // namespace

Mount::Mount(std::unique_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<Mount>> Mount::Create(std::shared_ptr<client::Session> session,
                                             client::Session::Fid root, std::string mountpoint,
                                             Options options) {
  if (session->dialect() != wire::Dialect::k9P2000L) {
    return Unexpected(Error(std::errc::protocol_not_supported,
                            fmt::format("fuse mount needs 9P2000.L, the session speaks {}",
                                        wire::DialectName(session->dialect()))));
  }
  Result<wire::Rgetattr> attr =
      session->AsyncGetattr(root, client::kGetattrBasic, asio::use_future).get();
  if (!attr)
    return Unexpected(
        Error(attr.error().code(), "getattr of the root: " + attr.error().ToString()));
  if ((attr->mode & S_IFMT) != S_IFDIR) {
    return Unexpected(Error(std::errc::not_a_directory, "the attached root is not a directory"));
  }

  auto state = std::make_unique<State>();
  state->fs = std::make_shared<Filesystem>(session, root, attr->qid.path, options);

  std::vector<std::string> opts = {"fsname=" + session->peer(), "subtype=ninefold",
                                   fmt::format("max_read={}", state->fs->max_read())};
  if (Has(options.fuse_options, "allow_other")) opts.push_back("default_permissions");
  for (const std::string& o : options.fuse_options) opts.push_back(o);
  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, "ninefold");
  for (const std::string& o : opts) {
    fuse_opt_add_arg(&args, "-o");
    fuse_opt_add_arg(&args, o.c_str());
  }
  const fuse_lowlevel_ops& ops = Filesystem::Ops();
  state->session = fuse_session_new(&args, &ops, sizeof ops, state->fs.get());
  fuse_opt_free_args(&args);
  if (!state->session) {
    return Unexpected(Error(std::errc::invalid_argument,
                            fmt::format("libfuse refused the options {}", fmt::join(opts, ","))));
  }
  if (fuse_session_mount(state->session, mountpoint.c_str()) != 0) {
    fuse_session_destroy(state->session);
    return Unexpected(
        Error(std::errc::io_error, "cannot mount on " + mountpoint + " (libfuse says why above)"));
  }
  state->mounted = true;
  return std::unique_ptr<Mount>(new Mount(std::move(state)));
}

Mount::~Mount() {
  if (state_->mounted) fuse_session_unmount(state_->session);
  state_->fs->StopReplying();
  fuse_session_destroy(state_->session);
  // Pending requests keep the Filesystem alive until they complete; the fids of the
  // inodes are clunked now.
  std::shared_ptr<Filesystem> fs = std::move(state_->fs);
  fs->Post([fs] { fs->Shutdown(); });
}

Result<void> Mount::Run() {
  fuse_session* se = state_->session;
  if (fuse_set_signal_handlers(se) != 0) {
    return Unexpected(Error(std::errc::io_error, "cannot install signal handlers"));
  }
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, std::max(1u, state_->fs->options().max_threads));
  // Every thread stays: libfuse ends a thread whenever more than idle_threads wait and
  // starts one again when none does, which under a steady stream of large reads or
  // writes meant dozens of thread creations a second (and slower writes).
  fuse_loop_cfg_set_idle_threads(config, std::max(1u, state_->fs->options().max_threads));
  int rc = fuse_session_loop_mt(se, config);
  fuse_loop_cfg_destroy(config);
  fuse_remove_signal_handlers(se);
  if (rc < 0) return Unexpected(Error(std::error_code(-rc, std::generic_category()), "fuse loop"));
  return {};
}

void Mount::Exit() { fuse_session_exit(state_->session); }

}  // namespace ninefold::fuse
