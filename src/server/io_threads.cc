#include "io_threads.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace ninefold::server {
namespace {

using Clock = std::chrono::steady_clock;

// Ticks without any BlockingScope before the watcher sleeps until the next one.
constexpr int kQuietTicks = 50;
// Busy: the running threads spent at least this share of a tick in bulk scopes, this
// many ticks in a row.
constexpr double kBusyShare = 0.5;
constexpr int kBusyTicks = 5;
// Idle enough to step one spare back: the load would fit in the other threads at this
// share, this many ticks in a row.
constexpr double kSpareShare = 0.6;
constexpr int kSpareTicks = 3;
// How long a spare waits in the io_context with nothing to do before it steps back.
constexpr std::chrono::milliseconds kSpareSlice{20};

}  // namespace

IoThreads::IoThreads(asio::io_context& io, unsigned max_threads, std::chrono::microseconds patience,
                     std::chrono::microseconds spin)
    : io_(io),
      max_threads_(max_threads == 0 ? 1 : max_threads),
      cores_(std::max(1u, std::thread::hardware_concurrency())),
      patience_(patience),
      spin_(spin) {}

IoThreads::~IoThreads() { StopThreads(); }

void IoThreads::Run() {
  const int tid = static_cast<int>(::gettid());
  {
    std::lock_guard lock(mu_);
    runner_tids_.push_back(tid);
  }
  running_++;
  RunPolling();
  running_--;
  {
    std::lock_guard lock(mu_);
    std::erase(runner_tids_, tid);
  }
  StopThreads();
}

// Runs handlers as they become ready. After the last one, it keeps asking the reactor
// (epoll_wait with a zero timeout) for `spin_` before it sleeps in epoll: a request that
// arrives within that time is read without waking a sleeping thread, which on a machine
// whose cores are idle is most of a small request's round trip.
void IoThreads::RunPolling() {
  if (spin_.count() <= 0) {
    io_.run();
    return;
  }
  Clock::time_point last = Clock::now();
  while (!io_.stopped()) {
    if (io_.poll() > 0) {
      last = Clock::now();
      continue;
    }
    if (io_.stopped()) break;
    if (Clock::now() - last < spin_) continue;
    if (io_.run_one() == 0) break;
    last = Clock::now();
  }
}

unsigned IoThreads::spares_started() const {
  std::lock_guard lock(mu_);
  return spares_started_;
}

IoThreads::BlockingScope::BlockingScope(IoThreads& threads, bool bulk)
    : threads_(threads), bulk_(bulk), start_(bulk ? Clock::now() : Clock::time_point()) {
  // seq_cst, paired with the watcher's: either it sees this scope or this sees it idle.
  threads_.blocked_.fetch_add(1);
  if (threads_.watcher_idle_.load()) threads_.WakeWatcher();
}

IoThreads::BlockingScope::~BlockingScope() {
  if (bulk_) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_);
    threads_.busy_ns_.fetch_add(static_cast<uint64_t>(ns.count()), std::memory_order_relaxed);
  }
  threads_.finished_.fetch_add(1);
  threads_.blocked_.fetch_sub(1);
}

void IoThreads::WakeWatcher() {
  std::lock_guard lock(mu_);
  if (stop_ || !watcher_idle_.load()) return;
  watcher_idle_.store(false);
  if (!watcher_.joinable()) {
    watcher_ = std::thread([this] { Watch(); });
  } else {
    watcher_cv_.notify_one();
  }
}

void IoThreads::Watch() {
  std::unique_lock lock(mu_);
  bool was_stuck = false;
  uint64_t last_finished = 0;
  uint64_t last_busy = busy_ns_.load();
  Clock::time_point last_tick = Clock::now();
  int quiet = 0;
  int busy_ticks = 0;
  int spare_ticks = 0;
  while (!stop_) {
    if (watcher_idle_.load()) {
      watcher_cv_.wait(lock);
      was_stuck = false;
      quiet = busy_ticks = spare_ticks = 0;
      last_busy = busy_ns_.load();
      last_tick = Clock::now();
      continue;
    }
    watcher_cv_.wait_for(lock, patience_);
    if (stop_) break;
    const int running = running_.load();
    const int blocked = blocked_.load();
    const uint64_t finished = finished_.load();
    const Clock::time_point now = Clock::now();
    const uint64_t busy_total = busy_ns_.load(std::memory_order_relaxed);
    // Threads' worth of time spent in scopes since the last tick (scopes still open
    // count when they end, so a blocked thread shows as busy a tick late).
    const double busy =
        static_cast<double>(busy_total - last_busy) /
        static_cast<double>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_tick).count());
    last_busy = busy_total;
    last_tick = now;

    // Stuck: every running thread is inside a scope, and was a tick ago, and no scope
    // has ended since: each of them has been blocked for at least `patience`.
    bool stuck = running > 0 && blocked >= running;
    if (stuck && was_stuck && finished == last_finished && !AnyRunnerRunnableLocked()) {
      AddSpareLocked();
      stuck = false;  // give the spare a full period before judging again
    }
    was_stuck = stuck;
    last_finished = finished;

    busy_ticks = busy >= kBusyShare * running ? busy_ticks + 1 : 0;
    if (busy_ticks >= kBusyTicks && static_cast<unsigned>(running) < cores_) {
      AddSpareLocked();
      busy_ticks = 0;
    }
    // A thread inside a scope now counts as fully busy (a scope that never ends would
    // otherwise never count at all).
    const bool spare_idle =
        running > 1 && blocked < running &&
        busy + static_cast<double>(blocked) < kSpareShare * static_cast<double>(running - 1);
    spare_ticks = spare_idle ? spare_ticks + 1 : 0;
    if (spare_ticks >= kSpareTicks) {
      retire_.fetch_add(1);
      spare_ticks = 0;
    }

    if (blocked == 0 && busy == 0 && ++quiet >= kQuietTicks) {
      watcher_idle_.store(true);
      // A scope that began before the store may have seen the watcher awake.
      if (blocked_.load() > 0) watcher_idle_.store(false);
    } else if (blocked != 0) {
      quiet = 0;
    }
  }
}

void IoThreads::AddSpareLocked() {
  if (static_cast<unsigned>(running_.load()) + wanted_ >= max_threads_) return;
  retire_.store(0);
  if (parked_ > wanted_) {
    wanted_++;
    spare_cv_.notify_one();
  } else if (spares_.size() + 1 < max_threads_) {
    wanted_++;
    spares_started_++;
    spares_.emplace_back([this] { RunSpare(); });
  }
}

bool IoThreads::AnyRunnerRunnableLocked() const {
  for (int tid : runner_tids_) {
    std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "tid (comm) S ...": the state follows the last ')'.
    const char* paren = std::strrchr(buf, ')');
    if (paren != nullptr && paren[1] == ' ' && paren[2] == 'R') return true;
  }
  return false;
}

void IoThreads::RunSpare() {
  const int tid = static_cast<int>(::gettid());
  std::unique_lock lock(mu_);
  for (;;) {
    parked_++;
    spare_cv_.wait(lock, [&] { return stop_ || wanted_ > 0; });
    parked_--;
    if (stop_) return;
    wanted_--;
    running_++;
    runner_tids_.push_back(tid);
    lock.unlock();
    while (!io_.stopped()) {
      if (io_.run_one_for(kSpareSlice) == 0) break;  // nothing to do for a while
      int r = retire_.load();
      if (r > 0 && retire_.compare_exchange_strong(r, r - 1)) break;
    }
    running_--;
    lock.lock();
    std::erase(runner_tids_, tid);
  }
}

void IoThreads::StopThreads() {
  std::thread watcher;
  std::vector<std::thread> spares;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    watcher = std::move(watcher_);
    spares.swap(spares_);
    watcher_cv_.notify_all();
    spare_cv_.notify_all();
  }
  if (watcher.joinable()) watcher.join();
  for (auto& t : spares) t.join();
}

}  // namespace ninefold::server
