// Dial strings, as Plan 9 writes them: "tcp!HOST!PORT", "unix!/PATH", "fd!R!W",
// "shm!/PATH" (parsed here; the shm transport comes later).
//
//   Result<Address> a = ParseAddress("tcp!127.0.0.1!5640");
//   a->ToString();  // "tcp!127.0.0.1!5640"
#ifndef NINEFOLD_TRANSPORT_ADDRESS_H_
#define NINEFOLD_TRANSPORT_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "ninefold/base/result.h"

namespace ninefold::transport {

struct Address {
  enum class Kind { kTcp, kUnix, kFd, kShm };
  Kind kind = Kind::kTcp;
  std::string host;   // kTcp
  uint16_t port = 0;  // kTcp
  std::string path;   // kUnix, kShm
  int read_fd = -1;   // kFd
  int write_fd = -1;  // kFd

  std::string ToString() const;
};

// EINVAL with a message saying what is wrong for anything but the forms above. Ports are
// 1..65535 (a listener may use 0 for "any free port"); fds are non-negative integers.
[[nodiscard]] Result<Address> ParseAddress(std::string_view dial);

}  // namespace ninefold::transport

#endif  // NINEFOLD_TRANSPORT_ADDRESS_H_
