// How a message declares its fields, once: a name, a member, the dialects the field exists
// in, and how it prints. Encode, decode, size and printing all walk this declaration.
//
//   struct Tclunk {
//     static constexpr uint8_t kType = 120;
//     static constexpr std::string_view kName = "Tclunk";
//     static constexpr DialectSet kDialects = kAllDialects;
//     uint32_t fid = 0;
//     static constexpr auto Fields() { return std::tuple(Field("fid", &Tclunk::fid)); }
//     bool operator==(const Tclunk&) const = default;
//   };
//
// The wire form follows from the member's C++ type: uint8_t/16/32/64 are little-endian
// integers, std::string_view is a string[s] (len[2] + bytes), Data is count[4] + bytes,
// WalkNames/WalkQids are nwname[2]/nwqid[2] + elements, a struct with Fields() is its
// fields in order, std::optional<uint32_t> is a trailing field that may be absent.
#ifndef NINEFOLD_WIRE_FIELD_H_
#define NINEFOLD_WIRE_FIELD_H_

#include <string_view>
#include <tuple>

#include "ninefold/wire/types.h"

namespace ninefold::wire {

// How an integer prints: mode bits read best in octal, masks in hex.
enum class Fmt : uint8_t { kDec, kHex, kOct };

template <class M, class T>
struct FieldDesc {
  using Type = T;
  std::string_view name;
  T M::*member;
  DialectSet dialects;
  Fmt fmt;
};

template <class M, class T>
constexpr FieldDesc<M, T> Field(std::string_view name, T M::*member,
                                DialectSet dialects = kAllDialects, Fmt fmt = Fmt::kDec) {
  return {name, member, dialects, fmt};
}
template <class M, class T>
constexpr FieldDesc<M, T> Field(std::string_view name, T M::*member, Fmt fmt) {
  return {name, member, kAllDialects, fmt};
}

// True for structs that declare their fields (messages, Qid, Stat, Dirent).
template <class T>
concept Record = requires {
  T::Fields();
};

}  // namespace ninefold::wire

#endif  // NINEFOLD_WIRE_FIELD_H_
