// The codec walks each message's Fields() declaration with one of three visitors: a
// Reader (decode), a Writer over a counting or a copying sink (size, encode) and a
// Printer. The per-type rules (how a string, a Data payload, a walk list or a stat goes
// on the wire) are written once per visitor below.
#include "ninefold/wire/codec.h"

#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <utility>

#include "fmt/format.h"
#include "ninefold/wire/field.h"

namespace ninefold::wire {
namespace {

// The field descriptors of R, built once at compile time. (Calling R::Fields() where
// they are used built the whole tuple of names and member pointers again on every call:
// a sixth of a server's instructions per getattr, by callgrind.)
template <class R>
inline constexpr auto kFieldsOf = R::Fields();

// Applies fn(desc, value) to every field of `record` present in `dialect`.
template <class R, class Fn>
void ForEachField(R& record, Dialect dialect, Fn&& fn) {
  std::apply(
      [&](const auto&... desc) {
        ((desc.dialects & Bit(dialect) ? fn(desc, record.*(desc.member)) : void()), ...);
      },
      kFieldsOf<std::remove_const_t<R>>);
}

// std::byteswap is C++23.
template <class T>
T ByteSwap(T v) {
  if constexpr (sizeof(T) == 1) return v;
  if constexpr (sizeof(T) == 2) return __builtin_bswap16(v);
  if constexpr (sizeof(T) == 4) return __builtin_bswap32(v);
  if constexpr (sizeof(T) == 8) return __builtin_bswap64(v);
}

template <class T>
T LoadLe(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = ByteSwap(v);
  return v;
}

template <class T>
void StoreLe(std::byte* p, T v) {
  if constexpr (std::endian::native == std::endian::big) v = ByteSwap(v);
  std::memcpy(p, &v, sizeof v);
}

// ---------------------------------------------------------------------------------------
// Fixed-size records (every field an integer or a record of integers: Tgetattr,
// Rgetattr, Tread's head, Rwrite, Tclunk, Qid...): their length per dialect is known at
// compile time, so decoding checks the length once and then only loads, and sizing is a
// table lookup. The general walk above stays the reference (and gives the errors).
template <class T>
struct FixedSize {  // not fixed
  static constexpr bool kFixed = false;
};
template <class T>
requires std::is_unsigned_v<T>
struct FixedSize<T> {
  static constexpr bool kFixed = true;
  static constexpr size_t Of(Dialect) { return sizeof(T); }
};
template <Record R>
struct FixedSize<R> {
  static constexpr bool kFixed = std::apply(
      [](const auto&... desc) {
        return (FixedSize<typename std::remove_cvref_t<decltype(desc)>::Type>::kFixed && ...);
      },
      kFieldsOf<R>);
  static constexpr size_t Of(Dialect d) {
    return std::apply(
        [d](const auto&... desc) {
          return ((desc.dialects & Bit(d)
                       ? FixedSize<typename std::remove_cvref_t<decltype(desc)>::Type>::Of(d)
                       : 0) +
                  ... + size_t{0});
        },
        kFieldsOf<R>);
  }
};
// The length of fixed record R in each dialect, indexed by Dialect.
template <class R>
inline constexpr std::array<size_t, 3> kFixedLength = {FixedSize<R>::Of(Dialect::k9P2000),
                                                       FixedSize<R>::Of(Dialect::k9P2000u),
                                                       FixedSize<R>::Of(Dialect::k9P2000L)};

static_assert(kFixedLength<Qid>[0] == 13 && !FixedSize<Rread>::kFixed);

// Loads fixed record `v` from p, which holds its whole length; advances p.
template <class T>
[[gnu::always_inline]] inline void LoadFixed(const std::byte*& p, T& v, Dialect d) {
  if constexpr (std::is_unsigned_v<T>) {
    v = LoadLe<T>(p);
    p += sizeof(T);
  } else {
    ForEachField(v, d, [&](const auto&, auto& value) { LoadFixed(p, value, d); });
  }
}

// ---------------------------------------------------------------------------------------
// Decoding. The first failure is recorded (sticky) and every later read is a no-op, so a
// record's walk never has to stop midway; the caller checks failed() once.
class Reader {
 public:
  Reader(std::span<const std::byte> frame, size_t pos, const Limits& limits,
         std::string_view msg_name)
      : frame_(frame), pos_(pos), end_(frame.size()), limits_(limits), msg_name_(msg_name) {}

  bool failed() const { return failed_; }
  Error TakeError() { return std::move(error_); }
  size_t left() const { return end_ - pos_; }
  size_t pos() const { return pos_; }
  size_t end() const { return end_; }
  void set_end(size_t end) { end_ = end; }
  // Names the top-level field being read, for error messages.
  void SetField(std::string_view field) {
    field_ = field;
    index_ = -1;
  }
  void SetIndex(int index) { index_ = index; }

  void Fail(Errc code, std::string_view detail) { FailAt(pos_, code, detail); }
  void FailAt(size_t at, Errc code, std::string_view detail) {
    if (failed_) return;
    failed_ = true;
    std::string where(msg_name_);
    if (!field_.empty()) fmt::format_to(std::back_inserter(where), ".{}", field_);
    if (index_ >= 0) fmt::format_to(std::back_inserter(where), "[{}]", index_);
    error_ = Error(code, fmt::format("{} at byte {}: {}", where, at, detail));
  }

  // Inlined on every field: the failure paths are out of line (Short, Overrun).
  template <class T>
  [[gnu::always_inline]] T Int() {
    if (failed_ || left() < sizeof(T)) [[unlikely]] {
      Short(sizeof(T));
      return 0;
    }
    T v = LoadLe<T>(frame_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }

  // A count-prefixed run of n bytes whose count field ended at pos(); checks n fits.
  [[gnu::always_inline]] std::span<const std::byte> Bytes(size_t n, std::string_view what) {
    if (failed_ || n > left()) [[unlikely]] {
      Overrun(n, what);
      return {};
    }
    auto out = frame_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

  // The next n bytes, which the caller checked are there (n <= left()).
  const std::byte* Take(size_t n) {
    const std::byte* p = frame_.data() + pos_;
    pos_ += n;
    return p;
  }

  // The next two bytes, not consumed; the caller checked left() >= 2.
  uint16_t PeekU16() const { return LoadLe<uint16_t>(frame_.data() + pos_); }

  std::string_view Str() {
    uint16_t n = Int<uint16_t>();
    auto bytes = Bytes(n, "string length");
    if (failed_) return {};
    if (n > limits_.max_string) {
      FailAt(pos_ - n - 2, Errc::kStringTooLong,
             fmt::format("string length {} exceeds limit {}", n, limits_.max_string));
      return {};
    }
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }

 private:
  [[gnu::cold, gnu::noinline]] void Short(size_t need) {
    if (failed_) return;
    Fail(Errc::kSizeMismatch, fmt::format("needs {} bytes, {} left", need, left()));
  }
  [[gnu::cold, gnu::noinline]] void Overrun(size_t n, std::string_view what) {
    if (failed_) return;
    FailAt(pos_ - (what == "string length" ? 2 : 4), Errc::kCountTooLarge,
           fmt::format("{} {}, {} left", what, n, left()));
  }

  std::span<const std::byte> frame_;
  size_t pos_;
  size_t end_;
  const Limits& limits_;
  std::string_view msg_name_;
  std::string_view field_;
  int index_ = -1;
  bool failed_ = false;
  Error error_;
};

template <class T>
requires std::is_unsigned_v<T>
void Get(Reader& r, T& v, Dialect) { v = r.Int<T>(); }
void Get(Reader& r, std::string_view& v, Dialect) { v = r.Str(); }
void Get(Reader& r, Data& v, Dialect) {
  uint32_t n = r.Int<uint32_t>();
  v = Data(r.Bytes(n, "count"));
}
void Get(Reader& r, std::optional<uint32_t>& v, Dialect) {
  // A trailing field some peers omit (Tfsync's datasync): absent when the frame ends.
  if (r.left() == 0) {
    v.reset();
  } else {
    v = r.Int<uint32_t>();
  }
}
template <Record R>
void Get(Reader& r, R& record, Dialect d);
void GetStatBody(Reader& r, Stat& v, Dialect d, size_t stat_start);
void Get(Reader& r, Stat& v, Dialect d) {
  size_t at = r.pos();
  uint16_t n = r.Int<uint16_t>();
  if (r.failed()) return;
  if (n > r.left()) {
    r.FailAt(at, Errc::kCountTooLarge, fmt::format("stat length {}, {} left", n, r.left()));
    return;
  }
  size_t outer_end = r.end();
  r.set_end(r.pos() + n);
  GetStatBody(r, v, d, r.pos());
  if (!r.failed() && r.left() != 0) {
    r.Fail(Errc::kSizeMismatch, fmt::format("stat length {} leaves {} bytes unused", n, r.left()));
  }
  r.set_end(outer_end);
}
template <class T>
void GetWalkList(Reader& r, BoundedVector<T, kMaxWalkElements>& v, Dialect d, const char* what) {
  size_t at = r.pos();
  uint16_t n = r.Int<uint16_t>();
  if (r.failed()) return;
  if (n > kMaxWalkElements) {
    r.FailAt(at, Errc::kTooManyWalkElements,
             fmt::format("{} {} exceeds {}", what, n, kMaxWalkElements));
    return;
  }
  for (int i = 0; i < n && !r.failed(); ++i) {
    r.SetIndex(i);
    T item{};
    Get(r, item, d);
    (void)v.push_back(item);  // cannot be full: n <= capacity
  }
}
void Get(Reader& r, WalkNames& v, Dialect d) { GetWalkList(r, v, d, "nwname"); }
void Get(Reader& r, WalkQids& v, Dialect d) { GetWalkList(r, v, d, "nwqid"); }

template <Record R>
void Get(Reader& r, R& record, Dialect d) {
  ForEachField(record, d, [&](const auto&, auto& value) { Get(r, value, d); });
}

// size[2] then the stat fields, which must use exactly `size` bytes.
void GetStatBody(Reader& r, Stat& v, Dialect d, size_t stat_start) {
  uint16_t size = r.Int<uint16_t>();
  if (r.failed()) return;
  if (size != r.left()) {
    r.FailAt(stat_start, Errc::kSizeMismatch,
             fmt::format("stat size {} disagrees with its {} bytes", size, r.left()));
    return;
  }
  ForEachField(v, d, [&](const auto&, auto& value) { Get(r, value, d); });
}

// Top level: like Get for a record, but names each field for error messages.
template <class M>
void DecodeFields(Reader& r, M& msg, Dialect d) {
  if constexpr (FixedSize<M>::kFixed) {
    // The usual case, a frame of exactly the message's length: no check per field.
    if (r.left() == kFixedLength<M>[static_cast<size_t>(d)]) [[likely]] {
      const std::byte* p = r.Take(r.left());
      LoadFixed(p, msg, d);
      return;
    }
  }
  ForEachField(msg, d, [&](const auto& desc, auto& value) {
    if (r.failed()) return;
    r.SetField(desc.name);
    Get(r, value, d);
  });
}

// Stores fixed record `v` at p; advances p.
template <class T>
[[gnu::always_inline]] inline void StoreFixed(std::byte*& p, const T& v, Dialect d) {
  if constexpr (std::is_unsigned_v<T>) {
    StoreLe<T>(p, v);
    p += sizeof(T);
  } else {
    ForEachField(v, d, [&](const auto&, const auto& value) { StoreFixed(p, value, d); });
  }
}

// ---------------------------------------------------------------------------------------
// Sizing and encoding share one Writer; the sink either counts or copies. Errors can only
// arise while sizing (strings over 65535 bytes, stats over 65535 bytes), so Encode sizes
// first and then writes without failure.
struct CountSink {
  size_t n = 0;
  void Put(const void*, size_t len) { n += len; }
};
struct CopySink {
  std::byte* p;
  void Put(const void* src, size_t len) {
    if (len != 0) std::memcpy(p, src, len);
    p += len;
  }
};

template <class Sink>
class Writer {
 public:
  explicit Writer(Sink& sink) : sink_(sink) {}
  Sink& sink() { return sink_; }
  bool failed() const { return failed_; }
  Error TakeError() { return std::move(error_); }
  void Fail(Error error) {
    if (failed_) return;
    failed_ = true;
    error_ = std::move(error);
  }
  void Fail(Errc code, std::string context) { Fail(Error(code, std::move(context))); }
  // When set, a Data payload is left out (its count is still written): EncodeHead.
  bool skip_payload = false;
  std::span<const std::byte> skipped;

  template <class T>
  void Int(T v) {
    if constexpr (std::endian::native == std::endian::big) v = ByteSwap(v);
    sink_.Put(&v, sizeof v);
  }

 private:
  Sink& sink_;
  bool failed_ = false;
  Error error_;
};

template <class S, class T>
requires std::is_unsigned_v<T>
void Put(Writer<S>& w, const T& v, Dialect) { w.Int(v); }
template <class S>
void Put(Writer<S>& w, const std::string_view& v, Dialect) {
  if (v.size() > std::numeric_limits<uint16_t>::max()) {
    w.Fail(Errc::kStringTooLong, fmt::format("string of {} bytes exceeds 65535", v.size()));
    return;
  }
  w.Int(static_cast<uint16_t>(v.size()));
  w.sink().Put(v.data(), v.size());
}
template <class S>
void Put(Writer<S>& w, const Data& v, Dialect) {
  if (v.size() > std::numeric_limits<uint32_t>::max()) {
    w.Fail(Errc::kCountTooLarge, fmt::format("payload of {} bytes", v.size()));
    return;
  }
  w.Int(static_cast<uint32_t>(v.size()));
  if (w.skip_payload) {
    w.skipped = v.bytes;
  } else {
    w.sink().Put(v.bytes.data(), v.size());
  }
}
template <class S>
void Put(Writer<S>& w, const std::optional<uint32_t>& v, Dialect) {
  if (v) w.Int(*v);
}
template <class S, Record R>
void Put(Writer<S>& w, const R& record, Dialect d);
// size[2] then the stat's fields: the form 9P2000 directory reads use.
template <class S>
void PutStatBody(Writer<S>& w, const Stat& v, Dialect d) {
  CountSink count;
  Writer<CountSink> sizer(count);
  ForEachField(v, d, [&](const auto&, const auto& value) { Put(sizer, value, d); });
  if (sizer.failed()) return w.Fail(sizer.TakeError());
  if (count.n > std::numeric_limits<uint16_t>::max() - 2) {
    return w.Fail(Errc::kCountTooLarge, fmt::format("stat of {} bytes exceeds 65533", count.n));
  }
  w.Int(static_cast<uint16_t>(count.n));
  ForEachField(v, d, [&](const auto&, const auto& value) { Put(w, value, d); });
}
// Rstat and Twstat: n[2] = size + 2, then the stat.
template <class S>
void Put(Writer<S>& w, const Stat& v, Dialect d) {
  CountSink count;
  Writer<CountSink> sizer(count);
  PutStatBody(sizer, v, d);
  if (sizer.failed()) return w.Fail(sizer.TakeError());
  w.Int(static_cast<uint16_t>(count.n));
  PutStatBody(w, v, d);
}
template <class S, class T>
void Put(Writer<S>& w, const BoundedVector<T, kMaxWalkElements>& v, Dialect d) {
  w.Int(static_cast<uint16_t>(v.size()));
  for (const T& item : v) Put(w, item, d);
}
template <class S, Record R>
void Put(Writer<S>& w, const R& record, Dialect d) {
  ForEachField(record, d, [&](const auto&, const auto& value) { Put(w, value, d); });
}

// ---------------------------------------------------------------------------------------
// Printing: "name value" pairs separated by spaces.
class Printer {
 public:
  explicit Printer(std::string& out) : out_(out) {}
  std::string& out() { return out_; }
  void Name(std::string_view name) {
    out_ += ' ';
    out_ += name;
    out_ += ' ';
  }
  // Quoted, with quotes doubled (as Plan 9 does) and unprintable bytes as \xNN.
  void Quoted(std::string_view s, size_t max = std::string_view::npos) {
    out_ += '\'';
    size_t n = std::min(s.size(), max);
    for (size_t i = 0; i < n; ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '\'') {
        out_ += "''";
      } else if (c == '\n') {
        out_ += "\\n";
      } else if (c < 0x20 || c >= 0x7f || c == '\\') {
        fmt::format_to(std::back_inserter(out_), "\\x{:02x}", c);
      } else {
        out_ += static_cast<char>(c);
      }
    }
    out_ += '\'';
    if (n < s.size()) out_ += "...";
  }

 private:
  std::string& out_;
};

constexpr size_t kPayloadPreview = 16;

template <class T>
requires std::is_unsigned_v<T>
void Print(Printer& p, const T& v, Fmt f, Dialect) {
  uint64_t x = v;
  switch (f) {
    case Fmt::kDec:
      fmt::format_to(std::back_inserter(p.out()), "{}", x);
      break;
    case Fmt::kHex:
      fmt::format_to(std::back_inserter(p.out()), "{:#x}", x);
      break;
    case Fmt::kOct:
      fmt::format_to(std::back_inserter(p.out()), "0{:o}", x);
      break;
  }
}
void Print(Printer& p, const std::string_view& v, Fmt, Dialect) { p.Quoted(v); }
void Print(Printer& p, const Data& v, Fmt, Dialect) {
  fmt::format_to(std::back_inserter(p.out()), "{} ", v.size());
  p.Quoted(v.AsString(), kPayloadPreview);
}
void Print(Printer& p, const std::optional<uint32_t>& v, Fmt f, Dialect d) {
  if (v) {
    Print(p, *v, f, d);
  } else {
    p.out() += "(absent)";
  }
}
// (path version type), type as letters, the way plan9port prints a qid.
void Print(Printer& p, const Qid& q, Fmt, Dialect) {
  std::string letters;
  static constexpr std::pair<uint8_t, char> kLetters[] = {
      {kQtDir, 'd'},  {kQtAppend, 'a'}, {kQtExcl, 'l'},    {kQtMount, 'm'},
      {kQtAuth, 'A'}, {kQtTmp, 't'},    {kQtSymlink, 'L'}, {kQtLink, 'H'}};
  for (auto [bit, letter] : kLetters) {
    if (q.type & bit) letters += letter;
  }
  fmt::format_to(std::back_inserter(p.out()), "({:016x} {} {})", q.path, q.version,
                 letters.empty() ? "f" : letters);
}
template <class T>
void Print(Printer& p, const BoundedVector<T, kMaxWalkElements>& v, Fmt f, Dialect d) {
  fmt::format_to(std::back_inserter(p.out()), "{}", v.size());
  for (const T& item : v) {
    p.out() += ' ';
    Print(p, item, f, d);
  }
}
template <Record R>
void Print(Printer& p, const R& record, Fmt, Dialect d) {
  p.out() += '{';
  ForEachField(record, d, [&](const auto& desc, const auto& value) {
    p.Name(desc.name);
    Print(p, value, desc.fmt, d);
  });
  p.out() += " }";
}

// ---------------------------------------------------------------------------------------
// The message table: type byte -> variant index, built from Message's alternatives.
using DecodeFn = void (*)(Reader&, Message&, Dialect);

template <size_t I>
void DecodeAlternative(Reader& r, Message& out, Dialect d) {
  DecodeFields(r, out.emplace<I>(), d);
}

struct TypeTable {
  std::array<DecodeFn, 256> decode{};
  std::array<std::string_view, 256> name{};
  std::array<DialectSet, 256> dialects{};
};

template <size_t... I>
constexpr TypeTable MakeTypeTable(std::index_sequence<I...>) {
  TypeTable t;
  auto add = [&t](uint8_t type, DecodeFn fn, std::string_view name, DialectSet dialects) {
    if (t.decode[type] != nullptr) throw "two messages share a type byte";  // compile error
    t.decode[type] = fn;
    t.name[type] = name;
    t.dialects[type] = dialects;
  };
  (add(std::variant_alternative_t<I, Message>::kType, &DecodeAlternative<I>,
       std::variant_alternative_t<I, Message>::kName,
       std::variant_alternative_t<I, Message>::kDialects),
   ...);
  return t;
}

constexpr TypeTable kTypes =
    MakeTypeTable(std::make_index_sequence<std::variant_size_v<Message>>());

Error WrongDialect(uint8_t type, Dialect d) {
  return Error(Errc::kWrongDialect,
               fmt::format("{} (type {}) in {}", kTypes.name[type], type, DialectName(d)));
}

// Sizes (Writer<CountSink>) or writes (Writer<CopySink>) a whole frame.
template <class S>
void PutFrame(Writer<S>& w, uint16_t tag, const Message& message, Dialect d, uint32_t size) {
  std::visit(
      [&](const auto& msg) {
        w.Int(size);
        w.Int(msg.kType);
        w.Int(tag);
        ForEachField(msg, d, [&](const auto&, const auto& value) { Put(w, value, d); });
      },
      message);
}

}  // namespace

std::string_view DialectName(Dialect d) {
  switch (d) {
    case Dialect::k9P2000:
      return "9P2000";
    case Dialect::k9P2000u:
      return "9P2000.u";
    case Dialect::k9P2000L:
      return "9P2000.L";
  }
  return "?";
}

std::optional<Dialect> ParseDialect(std::string_view version) {
  for (Dialect d : {Dialect::k9P2000, Dialect::k9P2000u, Dialect::k9P2000L}) {
    if (version == DialectName(d)) return d;
  }
  return std::nullopt;
}

std::string_view TypeName(uint8_t type) { return kTypes.name[type]; }
DialectSet TypeDialects(uint8_t type) { return kTypes.dialects[type]; }
uint8_t TypeOf(const Message& msg) {
  return std::visit([](const auto& m) { return m.kType; }, msg);
}

Result<uint32_t> PeekFrameSize(std::span<const std::byte> bytes, const Limits& limits) {
  if (bytes.size() < 4) {
    return Unexpected(
        Error(Errc::kTruncated, fmt::format("size field needs 4 bytes, {} present", bytes.size())));
  }
  uint32_t size = LoadLe<uint32_t>(bytes.data());
  if (size < kHeaderSize) {
    return Unexpected(Error(Errc::kFrameTooSmall, fmt::format("size {} < 7", size)));
  }
  if (size > limits.msize) {
    return Unexpected(
        Error(Errc::kFrameTooLarge, fmt::format("size {} > msize {}", size, limits.msize)));
  }
  return size;
}

namespace {
// Decodes exactly one frame (all of `frame`) into `out`.
Result<void> DecodeWhole(std::span<const std::byte> frame, Dialect dialect, const Limits& limits,
                         Frame& out) {
  Result<uint32_t> size = PeekFrameSize(frame, limits);
  if (!size) return Unexpected(size.error());
  if (frame.size() < kHeaderSize || frame.size() < *size) {
    return Unexpected(
        Error(Errc::kTruncated, fmt::format("size {} but {} bytes present", *size, frame.size())));
  }
  if (frame.size() > *size) {
    return Unexpected(
        Error(Errc::kSizeMismatch, fmt::format("size {} but {} bytes given", *size, frame.size())));
  }
  uint8_t type = static_cast<uint8_t>(frame[4]);
  if (kTypes.decode[type] == nullptr) {
    return Unexpected(Error(Errc::kUnknownType, fmt::format("type {} at byte 4", type)));
  }
  if (!(kTypes.dialects[type] & Bit(dialect))) return Unexpected(WrongDialect(type, dialect));
  out.tag = LoadLe<uint16_t>(frame.data() + 5);
  Reader r(frame, kHeaderSize, limits, kTypes.name[type]);
  kTypes.decode[type](r, out.msg, dialect);
  if (!r.failed() && r.left() != 0) {
    r.SetField("");
    r.Fail(Errc::kSizeMismatch, fmt::format("{} bytes after the last field", r.left()));
  }
  if (r.failed()) return Unexpected(r.TakeError());
  return {};
}
}  // namespace

Result<Frame> Decode(std::span<const std::byte> frame, Dialect dialect, const Limits& limits) {
  return Decode(frame, {}, dialect, limits);
}

Result<Frame> Decode(std::span<const std::byte> head, std::span<const std::byte> payload,
                     Dialect dialect, const Limits& limits) {
  Frame out;
  Result<void> ok = DecodeInto(head, payload, dialect, limits, out);
  if (!ok) return Unexpected(ok.error());
  return out;
}

Result<void> DecodeInto(std::span<const std::byte> head, std::span<const std::byte> payload,
                        Dialect dialect, const Limits& limits, Frame& out) {
  if (payload.empty()) return DecodeWhole(head, dialect, limits, out);
  // Only messages that end in count[4] data[count]; their heads hold no strings.
  constexpr size_t kLongestHead = kHeaderSize + 4 + 8 + 4;  // Twrite: fid offset count
  if (head.size() < kHeaderSize + 4 || head.size() > kLongestHead) {
    return Unexpected(
        Error(Errc::kSizeMismatch,
              fmt::format("a head of {} bytes before a separate payload", head.size())));
  }
  auto type = static_cast<uint8_t>(head[4]);
  if (type != Twrite::kType && type != Rread::kType && type != Rreaddir::kType) {
    return Unexpected(Error(Errc::kSizeMismatch,
                            fmt::format("{} cannot carry a separate payload", TypeName(type))));
  }
  uint32_t size = LoadLe<uint32_t>(head.data());
  uint32_t count = LoadLe<uint32_t>(head.data() + head.size() - 4);
  if (count != payload.size() || size != head.size() + payload.size()) {
    return Unexpected(Error(Errc::kSizeMismatch,
                            fmt::format("size {} count {} for a {}-byte head and {}-byte payload",
                                        size, count, head.size(), payload.size())));
  }
  if (size > limits.msize) {
    return Unexpected(
        Error(Errc::kFrameTooLarge, fmt::format("size {} > msize {}", size, limits.msize)));
  }
  // Decode the head as a frame with an empty payload, then point its data at the payload.
  std::array<std::byte, kLongestHead> copy{};
  std::memcpy(copy.data(), head.data(), head.size());
  StoreLe<uint32_t>(copy.data(), static_cast<uint32_t>(head.size()));
  StoreLe<uint32_t>(copy.data() + head.size() - 4, 0);
  Result<void> ok =
      DecodeWhole(std::span<const std::byte>(copy.data(), head.size()), dialect, limits, out);
  if (!ok) return ok;
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.data.bytes; }) m.data = Data(payload);
      },
      out.msg);
  return {};
}

namespace {
// One sizing pass: the whole frame's length and its head's (all but a trailing payload).
struct Sizes {
  size_t total = 0;
  size_t head = 0;
};
// By variant index: a fixed message's whole frame length per dialect (0: not fixed).
template <size_t... I>
constexpr auto MakeFixedFrameTable(std::index_sequence<I...>) {
  return std::array<std::array<size_t, 3>, sizeof...(I)>{[] {
    using M = std::variant_alternative_t<I, Message>;
    std::array<size_t, 3> n{};
    if constexpr (FixedSize<M>::kFixed) {
      for (size_t d = 0; d < 3; ++d) n[d] = kHeaderSize + kFixedLength<M>[d];
    }
    return n;
  }()...};
}
constexpr auto kFixedFrame =
    MakeFixedFrameTable(std::make_index_sequence<std::variant_size_v<Message>>());

// (A frame is passed as its message alone: its tag does not change its size, and callers
// holding a message elsewhere need not copy it into a Frame.)
Result<Sizes> SizeFrame(const Message& msg, Dialect dialect, uint32_t msize) {
  uint8_t type = TypeOf(msg);
  if (!(kTypes.dialects[type] & Bit(dialect))) return Unexpected(WrongDialect(type, dialect));
  if (size_t fixed = kFixedFrame[msg.index()][static_cast<size_t>(dialect)]; fixed != 0) {
    if (fixed <= msize) [[likely]]
      return Sizes{.total = fixed, .head = fixed};
  }
  CountSink count;
  Writer<CountSink> sizer(count);
  sizer.skip_payload = true;
  PutFrame(sizer, 0, msg, dialect, 0);
  if (sizer.failed()) return Unexpected(sizer.TakeError());
  Sizes sizes{.total = count.n + sizer.skipped.size(), .head = count.n};
  if (sizes.total > msize) {
    return Unexpected(Error(Errc::kFrameTooLarge, fmt::format("{} needs {} bytes, msize is {}",
                                                              TypeName(type), sizes.total, msize)));
  }
  return sizes;
}

// Writes the sized frame (without its payload when `skip_payload`) at `out`.
std::span<const std::byte> WriteFrame(uint16_t tag, const Message& message, Dialect dialect,
                                      size_t total, std::byte* out, bool skip_payload) {
  if (kFixedFrame[message.index()][static_cast<size_t>(dialect)] != 0) {
    return std::visit(
        [&](const auto& msg) {
          if constexpr (FixedSize<std::remove_cvref_t<decltype(msg)>>::kFixed) {
            std::byte* p = out;
            StoreFixed(p, static_cast<uint32_t>(total), dialect);
            StoreFixed(p, msg.kType, dialect);
            StoreFixed(p, tag, dialect);
            StoreFixed(p, msg, dialect);
          }
          return std::span<const std::byte>();
        },
        message);
  }
  CopySink sink{out};
  Writer<CopySink> w(sink);
  w.skip_payload = skip_payload;
  PutFrame(w, tag, message, dialect, static_cast<uint32_t>(total));
  return w.skipped;
}

Error Truncated(std::string_view what, size_t room, size_t need) {
  return Error(Errc::kTruncated, fmt::format("{} of {} bytes, {} needed", what, room, need));
}
}  // namespace

Result<size_t> EncodedSize(const Frame& frame, Dialect dialect) {
  Result<Sizes> sizes = SizeFrame(frame.msg, dialect, std::numeric_limits<uint32_t>::max());
  if (!sizes) return Unexpected(sizes.error());
  return sizes->total;
}

Result<size_t> Encode(const Frame& frame, Dialect dialect, std::span<std::byte> out,
                      uint32_t msize) {
  Result<Sizes> sizes = SizeFrame(frame.msg, dialect, msize);
  if (!sizes) return Unexpected(sizes.error());
  if (sizes->total > out.size()) {
    return Unexpected(Truncated("output buffer", out.size(), sizes->total));
  }
  WriteFrame(frame.tag, frame.msg, dialect, sizes->total, out.data(), false);
  return sizes->total;
}

Result<std::vector<std::byte>> Encode(const Frame& frame, Dialect dialect, uint32_t msize) {
  std::vector<std::byte> out;
  Result<void> ok = Encode(frame.tag, frame.msg, dialect, out, msize);
  if (!ok) return Unexpected(ok.error());
  return out;
}

Result<void> Encode(uint16_t tag, const Message& msg, Dialect dialect, std::vector<std::byte>& out,
                    uint32_t msize) {
  Result<Sizes> sizes = SizeFrame(msg, dialect, msize);
  if (!sizes) return Unexpected(sizes.error());
  out.resize(sizes->total);
  WriteFrame(tag, msg, dialect, sizes->total, out.data(), false);
  return {};
}

Result<EncodedHead> EncodeHead(const Frame& frame, Dialect dialect, std::span<std::byte> head,
                               uint32_t msize) {
  Result<Sizes> sizes = SizeFrame(frame.msg, dialect, msize);
  if (!sizes) return Unexpected(sizes.error());
  if (sizes->head > head.size()) {
    return Unexpected(Truncated("head buffer", head.size(), sizes->head));
  }
  return EncodedHead{sizes->head,
                     WriteFrame(frame.tag, frame.msg, dialect, sizes->total, head.data(), true)};
}

Result<EncodedHead> EncodeHead(const Frame& frame, Dialect dialect, std::vector<std::byte>& head,
                               uint32_t msize) {
  return EncodeHead(frame.tag, frame.msg, dialect, head, msize);
}

Result<EncodedHead> EncodeHead(uint16_t tag, const Message& msg, Dialect dialect,
                               std::vector<std::byte>& head, uint32_t msize) {
  Result<Sizes> sizes = SizeFrame(msg, dialect, msize);
  if (!sizes) return Unexpected(sizes.error());
  head.resize(sizes->head);
  return EncodedHead{sizes->head, WriteFrame(tag, msg, dialect, sizes->total, head.data(), true)};
}

namespace {
template <class T, class Body>
Result<T> DecodeEntry(std::span<const std::byte>& data, const Limits& limits, std::string_view what,
                      Body&& body) {
  Reader r(data, 0, limits, what);
  T entry{};
  body(r, entry);
  if (r.failed()) return Unexpected(r.TakeError());
  data = data.subspan(r.pos());
  return entry;
}

template <class Body>
bool AppendEntry(std::span<std::byte> out, size_t* used, Body&& body) {
  CountSink count;
  Writer<CountSink> sizer(count);
  body(sizer);
  if (sizer.failed() || count.n > out.size() - *used) return false;
  CopySink sink{out.data() + *used};
  Writer<CopySink> w(sink);
  body(w);
  *used += count.n;
  return true;
}
}  // namespace

Result<Dirent> DecodeDirent(std::span<const std::byte>& data, const Limits& limits) {
  return DecodeEntry<Dirent>(data, limits, "Dirent",
                             [](Reader& r, Dirent& e) { Get(r, e, Dialect::k9P2000L); });
}

Result<Stat> DecodeDirStat(std::span<const std::byte>& data, Dialect dialect,
                           const Limits& limits) {
  return DecodeEntry<Stat>(data, limits, "stat", [dialect](Reader& r, Stat& e) {
    // The stat's own size[2] bounds it, as in Rstat.
    size_t at = r.pos();
    if (r.left() >= 2) {
      size_t size = static_cast<size_t>(r.PeekU16());
      if (size + 2 > r.left()) {
        r.FailAt(at, Errc::kCountTooLarge,
                 fmt::format("stat size {}, {} left", size, r.left() - 2));
        return;
      }
      r.set_end(at + 2 + size);
    }
    GetStatBody(r, e, dialect, at);
  });
}

bool AppendDirent(std::span<std::byte> out, size_t* used, const Dirent& entry) {
  return AppendEntry(out, used, [&](auto& w) { Put(w, entry, Dialect::k9P2000L); });
}

bool AppendDirStat(std::span<std::byte> out, size_t* used, const Stat& entry, Dialect dialect) {
  return AppendEntry(out, used, [&](auto& w) { PutStatBody(w, entry, dialect); });
}

std::string Format(const Frame& frame, Dialect dialect) {
  std::string out;
  Printer p(out);
  std::visit(
      [&](const auto& msg) {
        out += msg.kName;
        p.Name("tag");
        Print(p, frame.tag, Fmt::kDec, dialect);
        ForEachField(msg, dialect, [&](const auto& desc, const auto& value) {
          p.Name(desc.name);
          Print(p, value, desc.fmt, dialect);
        });
      },
      frame.msg);
  return out;
}

}  // namespace ninefold::wire
