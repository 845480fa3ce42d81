#include "ninefold/server/server.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>

#include "asio/io_context.hpp"
#include "asio/post.hpp"
#include "asio/signal_set.hpp"
#include "connection.h"
#include "ninefold/base/log.h"
#include "ninefold/transport/channel.h"

namespace ninefold::server {

// Threads: the io_context runs on IoThreads (normally one thread, the caller of Run).
// Listener and signal handlers may run on any of its threads: `mu` guards the
// connection set and the stop flags.
struct Server::Impl {
  Impl(fs::FileServer& root_fs, ServerOptions opts)
      : root(root_fs),
        options(opts),
        threads(io, opts.worker_threads == 0 ? 1 : opts.worker_threads, IoThreads::kDefaultPatience,
                opts.spin),
        work(asio::make_work_guard(io)) {
    if (opts.splice_pipes > 0) {
      pipes.emplace(opts.splice_pipes, std::max<size_t>(opts.msize, 64 * 1024));
    }
    const char* trace = std::getenv("NINEFOLD_TRACE");
    if (trace != nullptr && trace[0] == '1') options.trace = true;
  }

  void Accept(std::shared_ptr<transport::Channel> channel) {
    std::shared_ptr<Connection> conn;
    {
      std::lock_guard lock(mu);
      if (!stopping) {
        stats.connections_accepted++;
        stats.connections_open++;
        conn = std::make_shared<Connection>(io, threads, root, options, stats, channel,
                                            pipes ? &*pipes : nullptr);
        connections.insert(conn);
      }
    }
    if (!conn) {
      channel->Close();
      return;
    }
    conn->Start([this, weak = std::weak_ptr<Connection>(conn)] {
      // Runs from inside the connection: erase later, not under its feet.
      asio::post(io, [this, weak] {
        std::lock_guard lock(mu);
        if (auto c = weak.lock()) connections.erase(c);
        stats.connections_open--;
        MaybeStopLocked();
      });
    });
  }

  void WaitForSignal() {
    signals->async_wait([this](const std::error_code& ec, int signo) {
      if (ec) return;  // cancelled: the server has stopped
      std::lock_guard lock(mu);
      if (stopping) {
        Log(LogLevel::kInfo, "signal {}: already stopping", signo);
      } else {
        Log(LogLevel::kInfo, "signal {}: stop accepting, finish requests in flight", signo);
        StopLocked();
      }
      // Keep swallowing signals until the server has stopped.
      if (!(stopping && connections.empty())) WaitForSignal();
    });
  }

  void StopLocked() {
    if (stopping) return;
    stopping = true;
    Log(LogLevel::kInfo, "shutting down: {} connection(s) to drain", connections.size());
    for (auto& l : listeners) l->Close();
    listeners.clear();
    for (const auto& c : connections) c->Drain();
    MaybeStopLocked();
  }

  void MaybeStopLocked() {
    if ((stopping || exit_when_idle) && connections.empty()) {
      stopping = true;
      work.reset();
      // Cancel the wait but keep the set: its handlers stay installed, so a second
      // SIGTERM (timeout(1) sends one to the child and one to the group) cannot kill
      // the process while it finishes.
      if (signals) signals->cancel();
    }
  }

  fs::FileServer& root;
  ServerOptions options;
  ServerStats stats;
  asio::io_context io;
  std::optional<transport::PipePool> pipes;  // set when splice_pipes > 0
  IoThreads threads;
  asio::executor_work_guard<asio::io_context::executor_type> work;  // guarded by mu
  std::unique_ptr<asio::signal_set> signals;
  std::mutex mu;
  std::vector<std::unique_ptr<transport::Listener>> listeners;  // guarded by mu
  std::set<std::shared_ptr<Connection>> connections;            // guarded by mu
  bool stopping = false;                                        // guarded by mu
  bool exit_when_idle = false;                                  // guarded by mu
};

Server::Server(fs::FileServer& root, ServerOptions options)
    : impl_(std::make_unique<Impl>(root, options)) {}

Server::~Server() = default;

Result<transport::Address> Server::Listen(const transport::Address& address) {
  if (address.kind == transport::Address::Kind::kFd) {
    auto channel = transport::OpenFdChannel(impl_->io, address.read_fd, address.write_fd);
    if (!channel) return Unexpected(channel.error());
    asio::post(impl_->io, [impl = impl_.get(), ch = *channel] { impl->Accept(ch); });
    return address;
  }
  auto listener = transport::Listen(
      impl_->io, address, [impl = impl_.get()](auto channel) { impl->Accept(std::move(channel)); },
      {.shm_queues = impl_->options.shm_queues});
  if (!listener) return Unexpected(listener.error());
  transport::Address bound = (*listener)->address();
  std::lock_guard lock(impl_->mu);
  impl_->listeners.push_back(std::move(*listener));
  return bound;
}

void Server::HandleSignals() {
  impl_->signals = std::make_unique<asio::signal_set>(impl_->io, SIGINT, SIGTERM);
  impl_->WaitForSignal();
}

void Server::Run() {
  impl_->threads.Run();
  Log(LogLevel::kDebug, "{} spare thread(s) were started", impl_->threads.spares_started());
}

void Server::Shutdown() {
  asio::post(impl_->io, [impl = impl_.get()] {
    std::lock_guard lock(impl->mu);
    impl->StopLocked();
  });
}

void Server::ExitWhenIdle() {
  asio::post(impl_->io, [impl = impl_.get()] {
    std::lock_guard lock(impl->mu);
    impl->exit_when_idle = true;
    impl->MaybeStopLocked();
  });
}

const ServerStats& Server::stats() const { return impl_->stats; }

void ExportTable::Add(std::string name, std::unique_ptr<fs::FileServer> server) {
  exports_.emplace_back(std::move(name), std::move(server));
}

std::vector<std::string> ExportTable::names() const {
  std::vector<std::string> out;
  for (const auto& e : exports_) out.push_back(e.first);
  return out;
}

Result<std::unique_ptr<fs::Node>> ExportTable::Attach(const fs::Identity& who,
                                                      std::string_view aname) {
  if (exports_.empty()) return fs::Errno(ENOENT, "nothing exported");
  if (aname.empty()) return exports_.front().second->Attach(who, aname);
  for (const auto& [name, server] : exports_) {
    if (name == aname) return server->Attach(who, aname);
  }
  return fs::Errno(ENOENT, "no export named '" + std::string(aname) + "'");
}

}  // namespace ninefold::server
