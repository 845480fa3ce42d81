// What the client subcommands (ls, cat, put, stat, mkdir, rm, mv, bench) share: the
// ADDR/--aname/--msize/--dialect options, connecting and mounting, and how an Error is
// told to the user.
#ifndef NINEFOLD_TOOLS_NINEFOLD_CLIENT_OPTIONS_H_
#define NINEFOLD_TOOLS_NINEFOLD_CLIENT_OPTIONS_H_

#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>

#include "CLI/CLI.hpp"
#include "fmt/format.h"
#include "ninefold/client/fs.h"
#include "ninefold/transport/address.h"

namespace ninefold::tools {

struct ConnectOptions {
  std::string addr;
  std::string aname;
  uint64_t msize = 1u << 20;
  std::string dialect = "9P2000.L";
  uint32_t max_outstanding = 64;
};

// Adds the positional ADDR and --aname/--msize/--dialect to `cmd`.
inline void AddConnectOptions(CLI::App* cmd, ConnectOptions* opt) {
  cmd->add_option("ADDR", opt->addr,
                  "server address: tcp!HOST!PORT, unix!/PATH, shm!/PATH or fd!R!W")
      ->required()
      ->check([](const std::string& addr) -> std::string {
        Result<transport::Address> a = transport::ParseAddress(addr);
        return a ? "" : a.error().ToString();
      });
  cmd->add_option("--aname", opt->aname,
                  "tree to attach (ninefold serve: an export's NAME, empty for the first; "
                  "diod: the exported path, or ctl)");
  cmd->add_option("--msize", opt->msize,
                  "largest message size to propose (K, M suffixes; default 1M; the server "
                  "may answer less)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{16} << 20));
  cmd->add_option("--dialect", opt->dialect, "9P2000.L (default), 9P2000.u or 9P2000")
      ->transform(CLI::IsMember({"9P2000", "9P2000.u", "9P2000.L"}, CLI::ignore_case));
}

inline wire::Dialect DialectOf(const std::string& name) {
  if (name == "9P2000") return wire::Dialect::k9P2000;
  if (name == "9P2000.u") return wire::Dialect::k9P2000u;
  return wire::Dialect::k9P2000L;
}

// A mounted tree and the link under it (the Fs goes first when this is destroyed).
struct Mounted {
  Link link;
  Fs fs;
};

// Dials and attaches. The error's context says what failed beyond the code (empty for a
// failed dial, whose code says it all).
inline Result<Mounted> Mount(const ConnectOptions& opt) {
  Result<Link> link = dial(opt.addr);
  if (!link) return Unexpected(Error(link.error().code(), ""));
  Result<Fs> fs = fsmount(*link, {.aname = opt.aname,
                                  .msize = static_cast<uint32_t>(opt.msize),
                                  .dialect = DialectOf(opt.dialect),
                                  .max_outstanding = opt.max_outstanding});
  if (!fs) return Unexpected(fs.error());
  return Mounted{std::move(*link), std::move(*fs)};
}

// "ADDR: Connection refused", "ADDR: Protocol not supported (version ...: ...)".
inline std::string DescribeMountError(const ConnectOptions& opt, const Error& e) {
  std::string out = fmt::format("{}: {}", opt.addr, e.code().message());
  if (!e.context().empty()) out += fmt::format(" ({})", e.context());
  return out;
}

// An error about a file, as coreutils says it: "No such file or directory". Errors that
// are about the connection or the protocol rather than the file keep their context.
inline std::string Describe(const Error& e) {
  const std::error_code& c = e.code();
  if (c.category() == std::generic_category()) {
    switch (c.value()) {
      case EIO:
      case ENOTCONN:
      case EPROTO:
      case ETIMEDOUT:
      case ECANCELED:
      case EPROTONOSUPPORT:
        break;
      default:
        return c.message();
    }
  }
  return e.ToString();
}

}  // namespace ninefold::tools

#endif  // NINEFOLD_TOOLS_NINEFOLD_CLIENT_OPTIONS_H_
