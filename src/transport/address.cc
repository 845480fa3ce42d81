#include "ninefold/transport/address.h"

#include <charconv>
#include <vector>

#include "fmt/format.h"

namespace ninefold::transport {
namespace {

Unexpected<Error> Invalid(std::string_view dial, std::string_view why) {
  return Unexpected(
      Error(std::errc::invalid_argument, fmt::format("dial string '{}': {} (forms: tcp!HOST!PORT, "
                                                     "unix!/PATH, fd!R!W, shm!/PATH)",
                                                     dial, why)));
}

template <class T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string Address::ToString() const {
  switch (kind) {
    case Kind::kTcp:
      return fmt::format("tcp!{}!{}", host, port);
    case Kind::kUnix:
      return "unix!" + path;
    case Kind::kFd:
      return fmt::format("fd!{}!{}", read_fd, write_fd);
    case Kind::kShm:
      return "shm!" + path;
  }
  return "?";
}

Result<Address> ParseAddress(std::string_view dial) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t bang = dial.find('!', start);
    parts.push_back(dial.substr(start, bang - start));
    if (bang == std::string_view::npos) break;
    start = bang + 1;
  }
  Address a;
  std::string_view net = parts[0];
  if (net == "tcp") {
    if (parts.size() != 3) return Invalid(dial, "tcp needs a host and a port");
    if (parts[1].empty()) return Invalid(dial, "empty host");
    unsigned port = 0;
    if (!ParseNumber(parts[2], &port) || port > 65535) return Invalid(dial, "bad port");
    a.kind = Address::Kind::kTcp;
    a.host = parts[1];
    a.port = static_cast<uint16_t>(port);
  } else if (net == "unix" || net == "shm") {
    if (parts.size() != 2 || parts[1].empty()) return Invalid(dial, "needs one path");
    a.kind = net == "unix" ? Address::Kind::kUnix : Address::Kind::kShm;
    a.path = parts[1];
  } else if (net == "fd") {
    if (parts.size() != 3) return Invalid(dial, "fd needs a read and a write descriptor");
    if (!ParseNumber(parts[1], &a.read_fd) || !ParseNumber(parts[2], &a.write_fd) ||
        a.read_fd < 0 || a.write_fd < 0) {
      return Invalid(dial, "bad descriptor");
    }
    a.kind = Address::Kind::kFd;
  } else {
    return Invalid(dial, fmt::format("unknown network '{}'", net));
  }
  return a;
}

}  // namespace ninefold::transport
