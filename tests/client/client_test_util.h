// What the client tests share: a Session on its own io thread, a fixture that starts the
// server a test case runs against (value-parameterized: the same cases for every server
// and transport), and helpers that look at the exported directory directly.
#ifndef NINEFOLD_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
#define NINEFOLD_TESTS_CLIENT_CLIENT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "asio/executor_work_guard.hpp"
#include "asio/io_context.hpp"
#include "asio/use_future.hpp"
#include "ninefold/client/session.h"
#include "peers.h"

namespace ninefold::client_test {

using namespace std::chrono_literals;
using client::Session;
using Fid = Session::Fid;

// Waits for an operation's future; a completion that never comes is a test failure (the
// client promises that nothing hangs), reported as ETIME so the caller's checks fail too.
template <class T>
Result<T> Get(std::future<Result<T>> f, std::chrono::seconds timeout = 30s) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "an operation did not complete within " << timeout.count() << " s";
    return Unexpected(Error(std::errc::stream_timeout, "test: no completion"));
  }
  return f.get();
}

// The std::errc of a failed result ("ok" when it did not fail), for EXPECT_EQ.
template <class T>
std::error_code Code(const Result<T>& r) {
  return r ? std::error_code() : r.error().code();
}
inline std::error_code Errc(std::errc e) { return std::make_error_code(e); }

// A Session over its own connection and io thread.
class Conn {
 public:
  static Result<std::unique_ptr<Conn>> Open(const std::string& address,
                                            client::SessionOptions options = {});
  ~Conn();  // closes the session, stops the thread
  Session& s() { return *session_; }
  const std::shared_ptr<Session>& session() { return session_; }
  asio::io_context& io() { return io_; }

 private:
  Conn() = default;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
  std::shared_ptr<Session> session_;
};

// Deterministic pseudo-random bytes.
std::vector<std::byte> RandomBytes(size_t n, uint64_t seed);
std::vector<std::byte> ReadHostFile(const std::string& path);
void WriteHostFile(const std::string& path, std::span<const std::byte> bytes);
std::vector<std::byte> Bytes(std::string_view s);

// Runs every case against one server (ServerKind) over one transport, started afresh for
// each case with an empty exported directory.
class ServerTest : public testing::TestWithParam<Target> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The server kind (for the few cases whose expectations differ, each with a reason).
  bool IsNinefold() const { return GetParam().server == ServerKind::kNinefold; }
  bool IsDiod() const { return GetParam().server == ServerKind::kDiod; }
  bool IsGanesha() const { return GetParam().server == ServerKind::kGanesha; }

  // A connected, attached session; `root` is its attach fid.
  std::unique_ptr<Conn> Connect(client::SessionOptions options = {});
  Fid Attach(Conn& c);
  // Walks root to a new fid; the fid or an error (the fid then released).
  Result<Fid> WalkNew(Conn& c, Fid from, const std::vector<std::string>& names);
  // Walks and Tlopens with `flags`.
  Result<Fid> OpenNew(Conn& c, Fid from, const std::vector<std::string>& names, uint32_t flags);

  std::string Host(const std::string& rel) const { return export_ + "/" + rel; }

  std::unique_ptr<TempDir> dir_;
  std::string export_;  // the exported directory on the host (also the aname)
  std::unique_ptr<ServerProcess> server_;
};

// The targets a suite runs against: ninefold and diod over tcp and unix, and nfs-ganesha
// over tcp when it can run here.
std::vector<Target> AllTargets();
std::string ParamName(const testing::TestParamInfo<Target>& info);

}  // namespace ninefold::client_test

#endif  // NINEFOLD_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
