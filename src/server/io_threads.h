// The threads that run the server's io_context. Private to the server library.
//
// Normally one thread (the caller of Run) does everything: it reads a request, answers
// it and writes the reply itself, so a request costs no thread hand-off at all. A call
// that may block (a FileServer call on a node whose may_block() is true) runs inside a
// BlockingScope. While such calls happen, a watcher thread looks every `patience` and
// lets a spare thread run the io_context as well (up to max_threads in all) when
//  * every running thread has been inside a BlockingScope for a whole period with none
//    of them finishing one, and none of them is runnable (blocked in the kernel: a read
//    on a fifo, a hung network file system; a thread that merely waits for a CPU on a
//    busy machine is not blocked, and more threads would not help it), or
//  * the running threads have spent most of several periods inside bulk calls (scopes
//    marked `bulk`: large reads and writes) and there is a core for one more; the bulk
//    copies of one connection then overlap on several cores, as a multi-threaded
//    server's would. (Small calls never count: for them a second thread costs more in
//    wake-ups than it saves.)
// A spare steps back when the watcher sees the others could carry the load without it,
// or after a slice with nothing to do. So a read that blocks delays other requests by
// about `patience`, not until it returns, and a server whose calls neither block nor
// saturate a core never wakes a second thread.
//
//   IoThreads threads(io, 8);
//   // in a handler:  { IoThreads::BlockingScope blocking(threads); node->Read(...); }
//   threads.Run();  // until io runs out of work; then spares and watcher are joined
//
// Thread safety: BlockingScope on any thread running the io_context; Run on one thread.
#ifndef NINEFOLD_SRC_SERVER_IO_THREADS_H_
#define NINEFOLD_SRC_SERVER_IO_THREADS_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "asio/io_context.hpp"

namespace ninefold::server {

class IoThreads {
 public:
  static constexpr std::chrono::microseconds kDefaultPatience{2000};

  IoThreads(asio::io_context& io, unsigned max_threads,
            std::chrono::microseconds patience = kDefaultPatience,
            std::chrono::microseconds spin = std::chrono::microseconds(0));
  // Joins the spares and the watcher (after Run has returned, or if it never ran).
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  // Runs the io_context on the calling thread until it runs out of work, then stops
  // the spares and the watcher. With `spin`, the thread polls the reactor for that long
  // after its last handler before it sleeps in epoll (spares never spin).
  void Run();

  // Marks the calling io thread as inside a call that may block; `bulk` for a call that
  // moves much data (it counts towards the busy rule).
  class BlockingScope {
   public:
    explicit BlockingScope(IoThreads& threads, bool bulk = false);
    ~BlockingScope();
    BlockingScope(const BlockingScope&) = delete;
    BlockingScope& operator=(const BlockingScope&) = delete;

   private:
    IoThreads& threads_;
    const bool bulk_;
    std::chrono::steady_clock::time_point start_;
  };

  // Spare threads started so far (for tests and logs).
  unsigned spares_started() const;

 private:
  void RunPolling();
  void WakeWatcher();
  void Watch();
  void RunSpare();
  void AddSpareLocked();
  // True when a thread running the io_context is runnable (state R in /proc).
  bool AnyRunnerRunnableLocked() const;
  void StopThreads();

  asio::io_context& io_;
  const unsigned max_threads_;
  const unsigned cores_;  // most threads worth running for load alone
  const std::chrono::microseconds patience_;
  const std::chrono::microseconds spin_;  // busy-poll time before sleeping in epoll

  // Lock-free counters, read by the watcher.
  std::atomic<int> running_{0};           // threads inside io_context::run*
  std::atomic<int> blocked_{0};           // of those, inside a BlockingScope
  std::atomic<uint64_t> finished_{0};     // BlockingScopes left: progress
  std::atomic<uint64_t> busy_ns_{0};      // time spent in bulk BlockingScopes left
  std::atomic<int> retire_{0};            // spares asked to step back
  std::atomic<bool> watcher_idle_{true};  // the watcher sleeps until a scope wakes it

  mutable std::mutex mu_;
  std::condition_variable watcher_cv_;  // the watcher's tick and its wake-up
  std::condition_variable spare_cv_;    // parked spares wait for `wanted_`
  bool stop_ = false;                   // guarded by mu_
  unsigned wanted_ = 0;                 // guarded by mu_: spares asked to run
  unsigned parked_ = 0;                 // guarded by mu_: spares waiting for work
  std::thread watcher_;                 // guarded by mu_: started on first need
  std::vector<std::thread> spares_;     // guarded by mu_
  unsigned spares_started_ = 0;         // guarded by mu_
  std::vector<int> runner_tids_;        // guarded by mu_: threads in io_context::run*
};

}  // namespace ninefold::server

#endif  // NINEFOLD_SRC_SERVER_IO_THREADS_H_
