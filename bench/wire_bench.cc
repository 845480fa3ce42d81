// Wire codec microbenchmarks: what one encode, one decode and one encode+decode round
// cost for typical messages, next to the floors they should be compared with.
//
//   scripts/run-bench.sh build/release        (`make bench`; numbers in docs/performance.md)
//
// Encoding writes into a preallocated buffer (the span overload: no allocation), as a
// transport would. Decoding is a view: strings and payloads point into the frame. For
// Rread the full Encode copies the payload into the frame, while EncodeHead writes only
// the 11-byte header and hands the payload back by reference for writev().
#include <benchmark/benchmark.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "ninefold/wire/codec.h"

namespace ninefold::wire {
namespace {

constexpr Dialect kDialect = Dialect::k9P2000L;
constexpr uint32_t kMsize = 1 << 20;
constexpr size_t kReadSize = 64 * 1024;

Frame SampleTwalk() {
  Twalk walk;
  walk.fid = 1;
  walk.newfid = 2;
  walk.wnames = {"usr", "glenda", "lib", "profile"};
  return Frame{3, walk};
}

Frame SampleRgetattr() {
  return Frame{4, Rgetattr{.valid = 0x3fff,
                           .qid = Qid{kQtFile, 7, 0x12345678},
                           .mode = 0100644,
                           .uid = 1000,
                           .gid = 1000,
                           .nlink = 1,
                           .size = 2292,
                           .blksize = 4096,
                           .blocks = 8,
                           .atime_sec = 1764000000,
                           .atime_nsec = 123456789,
                           .mtime_sec = 1764000000,
                           .mtime_nsec = 123456789,
                           .ctime_sec = 1764000000,
                           .ctime_nsec = 123456789}};
}

// 64 KiB of file data that Rread frames point into; lives for the whole run.
std::span<const std::byte> ReadPayload() {
  static const std::vector<std::byte> payload = [] {
    std::vector<std::byte> p(kReadSize);
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>(i * 131 + 7);
    return p;
  }();
  return payload;
}

Frame SampleRread() { return Frame{5, Rread{.data = Data(ReadPayload())}}; }

std::vector<std::byte> MustEncode(const Frame& frame) {
  Result<std::vector<std::byte>> bytes = Encode(frame, kDialect, kMsize);
  if (!bytes) std::abort();
  return *std::move(bytes);
}

// --- per message: encode, decode, encode+decode ---------------------------------------

template <Frame (*Make)()>
void BM_Encode(benchmark::State& state) {
  const Frame frame = Make();
  std::vector<std::byte> buf(MustEncode(frame).size());
  for (auto _ : state) {
    Result<size_t> n = Encode(frame, kDialect, buf, kMsize);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();  // the frame bytes count as written
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}

// kViewPayload: the decoder does not touch the payload, so bytes/s would mean nothing.
template <Frame (*Make)(), bool kViewPayload = false>
void BM_Decode(benchmark::State& state) {
  const std::vector<std::byte> bytes = MustEncode(Make());
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes.data());  // the frame could have changed: really decode
    Result<Frame> f = Decode(bytes, kDialect);
    benchmark::DoNotOptimize(f);
  }
  state.SetItemsProcessed(state.iterations());
  if (!kViewPayload)
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

template <Frame (*Make)()>
void BM_RoundTrip(benchmark::State& state) {
  const Frame frame = Make();
  std::vector<std::byte> buf(MustEncode(frame).size());
  for (auto _ : state) {
    Result<size_t> n = Encode(frame, kDialect, buf, kMsize);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
    Result<Frame> f = Decode(std::span(buf).first(*n), kDialect);
    benchmark::DoNotOptimize(f);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}

// The scatter/gather send: header into `head`, payload by reference (nothing copied).
void BM_EncodeHead_Rread64K(benchmark::State& state) {
  const Frame frame = SampleRread();
  std::array<std::byte, 64> head;
  size_t frame_size = 0;
  for (auto _ : state) {
    Result<EncodedHead> h = EncodeHead(frame, kDialect, head, kMsize);
    benchmark::DoNotOptimize(h);
    benchmark::ClobberMemory();
    frame_size = h->head_size + h->payload.size();
  }
  // Frames per second only: the payload is never touched.
  state.SetItemsProcessed(state.iterations());
  state.counters["frame_bytes"] = static_cast<double>(frame_size);
}

// The scatter/gather round: EncodeHead on the sending side, Decode of the received
// (contiguous) frame on the other.
void BM_RoundTripHead_Rread64K(benchmark::State& state) {
  const Frame frame = SampleRread();
  const std::vector<std::byte> received = MustEncode(frame);
  std::array<std::byte, 64> head;
  for (auto _ : state) {
    Result<EncodedHead> h = EncodeHead(frame, kDialect, head, kMsize);
    benchmark::DoNotOptimize(h);
    benchmark::ClobberMemory();
    benchmark::DoNotOptimize(received.data());
    Result<Frame> f = Decode(received, kDialect);
    benchmark::DoNotOptimize(f);
  }
  state.SetItemsProcessed(state.iterations());
}

// --- floors ---------------------------------------------------------------------------

// What copying the Rread payload once costs: the difference between Encode and
// EncodeHead of Rread should be about this.
void BM_Memcpy64K(benchmark::State& state) {
  std::span<const std::byte> src = ReadPayload();
  std::vector<std::byte> dst(src.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(src.data());
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * src.size()));
}

// The least a Twalk encoder can do: fixed fields and names stored with memcpy, no
// checks, no dialects, no size pass. Little-endian host assumed (as x86 and arm64 are).
size_t HandEncodeTwalk(std::byte* out, uint16_t tag, uint32_t fid, uint32_t newfid,
                       std::span<const std::string_view> names) {
  static_assert(std::endian::native == std::endian::little);
  std::byte* p = out + 4;
  auto put = [&p](const auto v) {
    std::memcpy(p, &v, sizeof v);
    p += sizeof v;
  };
  put(Twalk::kType);
  put(tag);
  put(fid);
  put(newfid);
  put(static_cast<uint16_t>(names.size()));
  for (std::string_view name : names) {
    put(static_cast<uint16_t>(name.size()));
    std::memcpy(p, name.data(), name.size());
    p += name.size();
  }
  const uint32_t size = static_cast<uint32_t>(p - out);
  std::memcpy(out, &size, sizeof size);
  return size;
}

void BM_HandRolledEncode_Twalk(benchmark::State& state) {
  static constexpr std::string_view kNames[] = {"usr", "glenda", "lib", "profile"};
  const std::vector<std::byte> expected = MustEncode(SampleTwalk());
  std::vector<std::byte> buf(expected.size());
  if (HandEncodeTwalk(buf.data(), 3, 1, 2, kNames) != expected.size() || buf != expected) {
    state.SkipWithError("hand-rolled Twalk differs from the codec's");
    return;
  }
  std::span<const std::string_view> names = kNames;
  for (auto _ : state) {
    benchmark::DoNotOptimize(names);
    size_t n = HandEncodeTwalk(buf.data(), 3, 1, 2, names);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}

BENCHMARK(BM_Encode<SampleTwalk>)->Name("Encode/Twalk4");
BENCHMARK(BM_Decode<SampleTwalk>)->Name("Decode/Twalk4");
BENCHMARK(BM_RoundTrip<SampleTwalk>)->Name("RoundTrip/Twalk4");
BENCHMARK(BM_HandRolledEncode_Twalk)->Name("Floor/HandRolledEncode/Twalk4");
BENCHMARK(BM_Encode<SampleRgetattr>)->Name("Encode/Rgetattr");
BENCHMARK(BM_Decode<SampleRgetattr>)->Name("Decode/Rgetattr");
BENCHMARK(BM_RoundTrip<SampleRgetattr>)->Name("RoundTrip/Rgetattr");
BENCHMARK(BM_Encode<SampleRread>)->Name("Encode/Rread64K");
BENCHMARK(BM_EncodeHead_Rread64K)->Name("EncodeHead/Rread64K");
BENCHMARK(BM_Decode<SampleRread, true>)->Name("Decode/Rread64K");
BENCHMARK(BM_RoundTrip<SampleRread>)->Name("RoundTrip/Rread64K");
BENCHMARK(BM_RoundTripHead_Rread64K)->Name("RoundTripHead/Rread64K");
BENCHMARK(BM_Memcpy64K)->Name("Floor/Memcpy/64K");

}  // namespace
}  // namespace ninefold::wire

BENCHMARK_MAIN();
