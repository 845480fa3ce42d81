// The machine's own limits, measured in the same run as the transports that must approach
// them: round trips between two threads over a shared cache line, a futex (same core and
// across cores), an eventfd, a Unix socket, TCP loopback, and ninefold's shared ring
// (spinning and sleeping); plus memcpy of 1 MiB, hot (in cache) and cold (from memory).
//
//   pingpong [--iterations N] [--json]
//
// Each ping-pong prints p50, p99 and the mean of N round trips (timed one by one with the
// steady clock, whose own cost, ~20 ns, is included and printed as "clock").
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ninefold/transport/ring.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  std::string name;
  double p50_us = 0, p99_us = 0, mean_us = 0, gbps = 0;
};

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Runs `ping` n times on this thread (timing each) while `pong` serves on another.
Stats PingPong(const std::string& name, int n, int ping_cpu, int pong_cpu,
               const std::function<void()>& ping, const std::function<void(int)>& pong) {
  std::thread server([&] {
    Pin(pong_cpu);
    pong(n + 1000);
  });
  Pin(ping_cpu);
  for (int i = 0; i < 1000; ++i) ping();  // warm-up
  std::vector<double> us(n);
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    ping();
    us[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  server.join();
  double sum = 0;
  for (double u : us) sum += u;
  std::sort(us.begin(), us.end());
  return {name, us[n / 2], us[n * 99 / 100], sum / n};
}

void FutexWait(std::atomic<uint32_t>* w, uint32_t v) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, v, nullptr, nullptr, 0);
}
void FutexWake(std::atomic<uint32_t>* w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

Stats SharedLine(int n) {
  alignas(64) std::atomic<uint32_t> turn{0};
  uint32_t seq = 0;
  return PingPong(
      "shared cache line", n, 0, 1,
      [&] {
        turn.store(++seq * 2 - 1, std::memory_order_release);
        while (turn.load(std::memory_order_acquire) != seq * 2) {
        }
      },
      [&](int count) {
        for (uint32_t k = 1; k <= static_cast<uint32_t>(count); ++k) {
          while (turn.load(std::memory_order_acquire) != k * 2 - 1) {
          }
          turn.store(k * 2, std::memory_order_release);
        }
      });
}

Stats Futex(int n, bool same_core) {
  alignas(64) std::atomic<uint32_t> a{0};
  alignas(64) std::atomic<uint32_t> b{0};
  return PingPong(
      same_core ? "futex, same core" : "futex, across cores", n, 0, same_core ? 0 : 1,
      [&] {
        a.store(1);
        FutexWake(&a);
        while (b.load() == 0) FutexWait(&b, 0);
        b.store(0);
      },
      [&](int count) {
        for (int k = 0; k < count; ++k) {
          while (a.load() == 0) FutexWait(&a, 0);
          a.store(0);
          b.store(1);
          FutexWake(&b);
        }
      });
}

Stats Fds(const std::string& name, int n, int ping_fd, int pong_fd, size_t bytes) {
  char buf[8] = {1};
  return PingPong(
      name, n, 0, 1,
      [&] {
        if (write(ping_fd, buf, bytes) < 0 || read(ping_fd, buf, bytes) < 0) std::abort();
      },
      [&](int count) {
        char b[8];
        for (int k = 0; k < count; ++k) {
          if (read(pong_fd, b, bytes) < 0 || write(pong_fd, b, bytes) < 0) std::abort();
        }
      });
}

Stats Eventfd(int n) {
  int to_pong = eventfd(0, 0), to_ping = eventfd(0, 0);
  uint64_t one = 1, v;
  Stats s = PingPong(
      "eventfd", n, 0, 1,
      [&] {
        if (write(to_pong, &one, 8) < 0 || read(to_ping, &v, 8) < 0) std::abort();
      },
      [&](int count) {
        uint64_t x;
        for (int k = 0; k < count; ++k) {
          if (read(to_pong, &x, 8) < 0 || write(to_ping, &one, 8) < 0) std::abort();
        }
      });
  close(to_pong);
  close(to_ping);
  return s;
}

Stats Tcp(int n) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(listener, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    std::abort();
  }
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(client, reinterpret_cast<sockaddr*>(&sa), len) != 0) std::abort();
  int server = accept(listener, nullptr, nullptr);
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Stats s = Fds("tcp loopback", n, client, server, 1);
  close(client);
  close(server);
  close(listener);
  return s;
}

Stats Unix(int n) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
  Stats s = Fds("unix socket", n, sv[0], sv[1], 1);
  close(sv[0]);
  close(sv[1]);
  return s;
}

// ninefold's ring: a getattr's frames through two rings, a 19-byte Tgetattr one way and
// a 160-byte Rgetattr back (the null-op of ninefold bench), each side reading what it got.
Stats Ring(int n, uint32_t spin) {
  using namespace ninefold::transport;
  constexpr uint32_t kCap = 1 << 16;
  auto* mem = static_cast<std::byte*>(std::aligned_alloc(64, 2 * RingView::Footprint(kCap)));
  std::span<std::byte> m1(mem, RingView::Footprint(kCap));
  std::span<std::byte> m2(mem + RingView::Footprint(kCap), RingView::Footprint(kCap));
  RingView r1 = *RingView::Init(m1), r2 = *RingView::Init(m2);
  RingProducer to_pong(r1), to_ping(r2);
  RingConsumer at_pong(r1), at_ping(r2);
  WaitPolicy wait{.spin = spin};
  std::byte request[19] = {}, reply[160] = {};
  uint64_t sum = 0;  // what was read, so the reads are not optimised away
  auto read = [&](std::span<const std::byte> f) {
    for (std::byte b : f) sum += std::to_integer<uint8_t>(b);
  };
  Stats s = PingPong(
      spin ? "ninefold ring, spinning" : "ninefold ring, sleeping", n, 0, 1,
      [&] {
        if (!to_pong.Push(request, {}, wait)) std::abort();
        auto f = at_ping.Wait(wait);
        if (!f) std::abort();
        read(*f);
        at_ping.Pop();
      },
      [&](int count) {
        for (int k = 0; k < count; ++k) {
          auto f = at_pong.Wait(wait);
          if (!f) std::abort();
          read(*f);
          at_pong.Pop();
          if (!to_ping.Push(reply, {}, wait)) std::abort();
        }
      });
  asm volatile("" : : "r"(sum));
  std::free(mem);
  return s;
}

Stats Memcpy() {
  std::vector<char> a(1 << 20, 1), b(1 << 20);
  int rounds = 2000;
  for (int i = 0; i < 100; ++i) std::memcpy(b.data(), a.data(), a.size());
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    std::memcpy(b.data(), a.data(), a.size());
    asm volatile("" : : "r"(b.data()) : "memory");
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  Stats st{"memcpy 1 MiB (hot)"};
  st.gbps = rounds * double(a.size()) / s / 1e9;
  st.mean_us = s / rounds * 1e6;
  return st;
}

// 1 MiB copies walking 256 MiB of source and destination: every byte comes from and goes
// to memory, not cache — what a sequential read of a large file pays per copy.
Stats MemcpyCold() {
  constexpr size_t kSpan = 256u << 20, kChunk = 1u << 20;
  std::vector<char> a(kSpan, 1), b(kSpan, 2);
  auto t0 = Clock::now();
  int rounds = 0;
  for (int pass = 0; pass < 3; ++pass) {
    for (size_t off = 0; off < kSpan; off += kChunk, ++rounds) {
      std::memcpy(b.data() + off, a.data() + off, kChunk);
      asm volatile("" : : "r"(b.data()) : "memory");
    }
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  Stats st{"memcpy 1 MiB (cold)"};
  st.gbps = rounds * double(kChunk) / s / 1e9;
  st.mean_us = s / rounds * 1e6;
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 100000;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "usage: %s [--iterations N] [--json]\n", argv[0]);
      return 2;
    }
  }
  auto t0 = Clock::now();
  for (int i = 0; i < 1000; ++i) asm volatile("" : : "r"(Clock::now().time_since_epoch().count()));
  double clock_ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / 1000;
  std::vector<Stats> all = {SharedLine(n),       Ring(n, 1u << 30), Futex(n / 4, true),
                            Futex(n / 4, false), Ring(n / 4, 0),    Eventfd(n / 4),
                            Unix(n / 4),         Tcp(n / 4),        Memcpy(),
                            MemcpyCold()};
  if (json) {
    std::printf("{\"clock_ns\": %.1f, \"results\": [", clock_ns);
    for (size_t i = 0; i < all.size(); ++i) {
      std::printf(
          "%s{\"name\": \"%s\", \"p50_us\": %.3f, \"p99_us\": %.3f, \"mean_us\": %.3f, "
          "\"gbps\": %.2f}",
          i ? ", " : "", all[i].name.c_str(), all[i].p50_us, all[i].p99_us, all[i].mean_us,
          all[i].gbps);
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("round trips between two threads (clock read: %.0f ns, included)\n", clock_ns);
  std::printf("%-26s %10s %10s %10s\n", "", "p50 us", "p99 us", "mean us");
  for (const Stats& s : all) {
    if (s.gbps > 0) {
      std::printf("%-26s %10s %10s %10.2f   %.1f GB/s\n", s.name.c_str(), "", "", s.mean_us,
                  s.gbps);
    } else {
      std::printf("%-26s %10.2f %10.2f %10.2f\n", s.name.c_str(), s.p50_us, s.p99_us, s.mean_us);
    }
  }
}
