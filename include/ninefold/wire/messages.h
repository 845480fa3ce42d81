// Every T and R message of 9P2000, 9P2000.u and 9P2000.L, each declared once.
//
// A message is a plain struct: kType (the type byte), kName, kDialects (where it is
// valid) and Fields(), the ordered wire layout (see field.h). Fields that exist only in
// some dialects say so (Tattach.n_uname: 9P2000.u and .L). `Message` is the variant of
// all of them; `Frame` is a tag plus a Message. The codec (codec.h) walks these
// declarations; nothing else restates a layout.
//
// References: Plan 9 intro(5) and friends for 9P2000; the 9P2000.u RFC draft; the
// 9P2000.L protocol description kept with diod and the Linux kernel (include/net/9p).
#ifndef NINEFOLD_WIRE_MESSAGES_H_
#define NINEFOLD_WIRE_MESSAGES_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <variant>

#include "ninefold/wire/field.h"
#include "ninefold/wire/types.h"

namespace ninefold::wire {

// The server's unique identification of a file: type[1] version[4] path[8].
struct Qid {
  uint8_t type = 0;
  uint32_t version = 0;
  uint64_t path = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("type", &Qid::type), Field("version", &Qid::version),
                      Field("path", &Qid::path, Fmt::kHex));
  }
  bool operator==(const Qid&) const = default;
};

// The 9P2000 (and, with its extra fields, 9P2000.u) stat structure, as Rstat/Twstat carry
// it and as 9P2000 directory reads return it. On the wire it starts with size[2], the
// length of what follows, which the codec derives; Rstat and Twstat put one more length,
// n[2] = size + 2, in front of it.
struct Stat {
  uint16_t type = 0;
  uint32_t dev = 0;
  Qid qid;
  uint32_t mode = 0;
  uint32_t atime = 0;
  uint32_t mtime = 0;
  uint64_t length = 0;
  std::string_view name;
  std::string_view uid;
  std::string_view gid;
  std::string_view muid;
  std::string_view extension;  // 9P2000.u
  uint32_t n_uid = 0;          // 9P2000.u
  uint32_t n_gid = 0;          // 9P2000.u
  uint32_t n_muid = 0;         // 9P2000.u
  static constexpr auto Fields() {
    return std::tuple(
        Field("type", &Stat::type), Field("dev", &Stat::dev), Field("qid", &Stat::qid),
        Field("mode", &Stat::mode, Fmt::kOct), Field("atime", &Stat::atime),
        Field("mtime", &Stat::mtime), Field("length", &Stat::length), Field("name", &Stat::name),
        Field("uid", &Stat::uid), Field("gid", &Stat::gid), Field("muid", &Stat::muid),
        Field("extension", &Stat::extension, kOnlyDotU), Field("n_uid", &Stat::n_uid, kOnlyDotU),
        Field("n_gid", &Stat::n_gid, kOnlyDotU), Field("n_muid", &Stat::n_muid, kOnlyDotU));
  }
  bool operator==(const Stat&) const = default;
};

// One 9P2000.L directory entry inside Rreaddir's data: qid[13] offset[8] type[1] name[s].
struct Dirent {
  Qid qid;
  uint64_t offset = 0;
  uint8_t type = 0;
  std::string_view name;
  static constexpr auto Fields() {
    return std::tuple(Field("qid", &Dirent::qid), Field("offset", &Dirent::offset),
                      Field("type", &Dirent::type), Field("name", &Dirent::name));
  }
  bool operator==(const Dirent&) const = default;
};

using WalkNames = BoundedVector<std::string_view, kMaxWalkElements>;
using WalkQids = BoundedVector<Qid, kMaxWalkElements>;

#define NINEFOLD_WIRE_MESSAGE(Name, type, dialects) \
  static constexpr uint8_t kType = type;            \
  static constexpr std::string_view kName = #Name;  \
  static constexpr DialectSet kDialects = dialects; \
  bool operator==(const Name&) const = default

struct Tversion {
  NINEFOLD_WIRE_MESSAGE(Tversion, 100, kAllDialects);
  uint32_t msize = 0;
  std::string_view version;
  static constexpr auto Fields() {
    return std::tuple(Field("msize", &Tversion::msize), Field("version", &Tversion::version));
  }
};

struct Rversion {
  NINEFOLD_WIRE_MESSAGE(Rversion, 101, kAllDialects);
  uint32_t msize = 0;
  std::string_view version;
  static constexpr auto Fields() {
    return std::tuple(Field("msize", &Rversion::msize), Field("version", &Rversion::version));
  }
};

struct Tauth {
  NINEFOLD_WIRE_MESSAGE(Tauth, 102, kAllDialects);
  uint32_t afid = 0;
  std::string_view uname;
  std::string_view aname;
  uint32_t n_uname = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("afid", &Tauth::afid), Field("uname", &Tauth::uname),
                      Field("aname", &Tauth::aname), Field("n_uname", &Tauth::n_uname, kDotUOrL));
  }
};

struct Rauth {
  NINEFOLD_WIRE_MESSAGE(Rauth, 103, kAllDialects);
  Qid aqid;
  static constexpr auto Fields() { return std::tuple(Field("aqid", &Rauth::aqid)); }
};

struct Tattach {
  NINEFOLD_WIRE_MESSAGE(Tattach, 104, kAllDialects);
  uint32_t fid = 0;
  uint32_t afid = 0;
  std::string_view uname;
  std::string_view aname;
  uint32_t n_uname = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tattach::fid), Field("afid", &Tattach::afid),
                      Field("uname", &Tattach::uname), Field("aname", &Tattach::aname),
                      Field("n_uname", &Tattach::n_uname, kDotUOrL));
  }
};

struct Rattach {
  NINEFOLD_WIRE_MESSAGE(Rattach, 105, kAllDialects);
  Qid qid;
  static constexpr auto Fields() { return std::tuple(Field("qid", &Rattach::qid)); }
};

struct Rerror {
  NINEFOLD_WIRE_MESSAGE(Rerror, 107, kClassic);
  std::string_view ename;
  uint32_t errnum = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("ename", &Rerror::ename), Field("errno", &Rerror::errnum, kOnlyDotU));
  }
};

struct Tflush {
  NINEFOLD_WIRE_MESSAGE(Tflush, 108, kAllDialects);
  uint16_t oldtag = 0;
  static constexpr auto Fields() { return std::tuple(Field("oldtag", &Tflush::oldtag)); }
};

struct Rflush {
  NINEFOLD_WIRE_MESSAGE(Rflush, 109, kAllDialects);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Twalk {
  NINEFOLD_WIRE_MESSAGE(Twalk, 110, kAllDialects);
  uint32_t fid = 0;
  uint32_t newfid = 0;
  WalkNames wnames;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Twalk::fid), Field("newfid", &Twalk::newfid),
                      Field("nwname", &Twalk::wnames));
  }
};

struct Rwalk {
  NINEFOLD_WIRE_MESSAGE(Rwalk, 111, kAllDialects);
  WalkQids wqids;
  static constexpr auto Fields() { return std::tuple(Field("nwqid", &Rwalk::wqids)); }
};

struct Topen {
  NINEFOLD_WIRE_MESSAGE(Topen, 112, kClassic);
  uint32_t fid = 0;
  uint8_t mode = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Topen::fid), Field("mode", &Topen::mode));
  }
};

struct Ropen {
  NINEFOLD_WIRE_MESSAGE(Ropen, 113, kClassic);
  Qid qid;
  uint32_t iounit = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("qid", &Ropen::qid), Field("iounit", &Ropen::iounit));
  }
};

struct Tcreate {
  NINEFOLD_WIRE_MESSAGE(Tcreate, 114, kClassic);
  uint32_t fid = 0;
  std::string_view name;
  uint32_t perm = 0;
  uint8_t mode = 0;
  std::string_view extension;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tcreate::fid), Field("name", &Tcreate::name),
                      Field("perm", &Tcreate::perm, Fmt::kOct), Field("mode", &Tcreate::mode),
                      Field("extension", &Tcreate::extension, kOnlyDotU));
  }
};

struct Rcreate {
  NINEFOLD_WIRE_MESSAGE(Rcreate, 115, kClassic);
  Qid qid;
  uint32_t iounit = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("qid", &Rcreate::qid), Field("iounit", &Rcreate::iounit));
  }
};

struct Tread {
  NINEFOLD_WIRE_MESSAGE(Tread, 116, kAllDialects);
  uint32_t fid = 0;
  uint64_t offset = 0;
  uint32_t count = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tread::fid), Field("offset", &Tread::offset),
                      Field("count", &Tread::count));
  }
};

struct Rread {
  NINEFOLD_WIRE_MESSAGE(Rread, 117, kAllDialects);
  Data data;
  static constexpr auto Fields() { return std::tuple(Field("count", &Rread::data)); }
};

struct Twrite {
  NINEFOLD_WIRE_MESSAGE(Twrite, 118, kAllDialects);
  uint32_t fid = 0;
  uint64_t offset = 0;
  Data data;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Twrite::fid), Field("offset", &Twrite::offset),
                      Field("count", &Twrite::data));
  }
};

struct Rwrite {
  NINEFOLD_WIRE_MESSAGE(Rwrite, 119, kAllDialects);
  uint32_t count = 0;
  static constexpr auto Fields() { return std::tuple(Field("count", &Rwrite::count)); }
};

struct Tclunk {
  NINEFOLD_WIRE_MESSAGE(Tclunk, 120, kAllDialects);
  uint32_t fid = 0;
  static constexpr auto Fields() { return std::tuple(Field("fid", &Tclunk::fid)); }
};

struct Rclunk {
  NINEFOLD_WIRE_MESSAGE(Rclunk, 121, kAllDialects);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Tremove {
  NINEFOLD_WIRE_MESSAGE(Tremove, 122, kAllDialects);
  uint32_t fid = 0;
  static constexpr auto Fields() { return std::tuple(Field("fid", &Tremove::fid)); }
};

struct Rremove {
  NINEFOLD_WIRE_MESSAGE(Rremove, 123, kAllDialects);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Tstat {
  NINEFOLD_WIRE_MESSAGE(Tstat, 124, kClassic);
  uint32_t fid = 0;
  static constexpr auto Fields() { return std::tuple(Field("fid", &Tstat::fid)); }
};

struct Rstat {
  NINEFOLD_WIRE_MESSAGE(Rstat, 125, kClassic);
  Stat stat;
  static constexpr auto Fields() { return std::tuple(Field("stat", &Rstat::stat)); }
};

struct Twstat {
  NINEFOLD_WIRE_MESSAGE(Twstat, 126, kClassic);
  uint32_t fid = 0;
  Stat stat;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Twstat::fid), Field("stat", &Twstat::stat));
  }
};

struct Rwstat {
  NINEFOLD_WIRE_MESSAGE(Rwstat, 127, kClassic);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Rlerror {
  NINEFOLD_WIRE_MESSAGE(Rlerror, 7, kOnlyDotL);
  uint32_t ecode = 0;
  static constexpr auto Fields() { return std::tuple(Field("ecode", &Rlerror::ecode)); }
};

struct Tstatfs {
  NINEFOLD_WIRE_MESSAGE(Tstatfs, 8, kOnlyDotL);
  uint32_t fid = 0;
  static constexpr auto Fields() { return std::tuple(Field("fid", &Tstatfs::fid)); }
};

struct Rstatfs {
  NINEFOLD_WIRE_MESSAGE(Rstatfs, 9, kOnlyDotL);
  uint32_t type = 0;
  uint32_t bsize = 0;
  uint64_t blocks = 0;
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint64_t fsid = 0;
  uint32_t namelen = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("type", &Rstatfs::type), Field("bsize", &Rstatfs::bsize),
                      Field("blocks", &Rstatfs::blocks), Field("bfree", &Rstatfs::bfree),
                      Field("bavail", &Rstatfs::bavail), Field("files", &Rstatfs::files),
                      Field("ffree", &Rstatfs::ffree), Field("fsid", &Rstatfs::fsid),
                      Field("namelen", &Rstatfs::namelen));
  }
};

struct Tlopen {
  NINEFOLD_WIRE_MESSAGE(Tlopen, 12, kOnlyDotL);
  uint32_t fid = 0;
  uint32_t flags = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tlopen::fid), Field("flags", &Tlopen::flags, Fmt::kOct));
  }
};

struct Rlopen {
  NINEFOLD_WIRE_MESSAGE(Rlopen, 13, kOnlyDotL);
  Qid qid;
  uint32_t iounit = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("qid", &Rlopen::qid), Field("iounit", &Rlopen::iounit));
  }
};

struct Tlcreate {
  NINEFOLD_WIRE_MESSAGE(Tlcreate, 14, kOnlyDotL);
  uint32_t fid = 0;
  std::string_view name;
  uint32_t flags = 0;
  uint32_t mode = 0;
  uint32_t gid = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tlcreate::fid), Field("name", &Tlcreate::name),
                      Field("flags", &Tlcreate::flags, Fmt::kOct),
                      Field("mode", &Tlcreate::mode, Fmt::kOct), Field("gid", &Tlcreate::gid));
  }
};

struct Rlcreate {
  NINEFOLD_WIRE_MESSAGE(Rlcreate, 15, kOnlyDotL);
  Qid qid;
  uint32_t iounit = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("qid", &Rlcreate::qid), Field("iounit", &Rlcreate::iounit));
  }
};

struct Tsymlink {
  NINEFOLD_WIRE_MESSAGE(Tsymlink, 16, kOnlyDotL);
  uint32_t fid = 0;
  std::string_view name;
  std::string_view symtgt;
  uint32_t gid = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tsymlink::fid), Field("name", &Tsymlink::name),
                      Field("symtgt", &Tsymlink::symtgt), Field("gid", &Tsymlink::gid));
  }
};

struct Rsymlink {
  NINEFOLD_WIRE_MESSAGE(Rsymlink, 17, kOnlyDotL);
  Qid qid;
  static constexpr auto Fields() { return std::tuple(Field("qid", &Rsymlink::qid)); }
};

struct Tmknod {
  NINEFOLD_WIRE_MESSAGE(Tmknod, 18, kOnlyDotL);
  uint32_t dfid = 0;
  std::string_view name;
  uint32_t mode = 0;
  uint32_t major = 0;
  uint32_t minor = 0;
  uint32_t gid = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("dfid", &Tmknod::dfid), Field("name", &Tmknod::name),
                      Field("mode", &Tmknod::mode, Fmt::kOct), Field("major", &Tmknod::major),
                      Field("minor", &Tmknod::minor), Field("gid", &Tmknod::gid));
  }
};

struct Rmknod {
  NINEFOLD_WIRE_MESSAGE(Rmknod, 19, kOnlyDotL);
  Qid qid;
  static constexpr auto Fields() { return std::tuple(Field("qid", &Rmknod::qid)); }
};

struct Trename {
  NINEFOLD_WIRE_MESSAGE(Trename, 20, kOnlyDotL);
  uint32_t fid = 0;
  uint32_t dfid = 0;
  std::string_view name;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Trename::fid), Field("dfid", &Trename::dfid),
                      Field("name", &Trename::name));
  }
};

struct Rrename {
  NINEFOLD_WIRE_MESSAGE(Rrename, 21, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Treadlink {
  NINEFOLD_WIRE_MESSAGE(Treadlink, 22, kOnlyDotL);
  uint32_t fid = 0;
  static constexpr auto Fields() { return std::tuple(Field("fid", &Treadlink::fid)); }
};

struct Rreadlink {
  NINEFOLD_WIRE_MESSAGE(Rreadlink, 23, kOnlyDotL);
  std::string_view target;
  static constexpr auto Fields() { return std::tuple(Field("target", &Rreadlink::target)); }
};

struct Tgetattr {
  NINEFOLD_WIRE_MESSAGE(Tgetattr, 24, kOnlyDotL);
  uint32_t fid = 0;
  uint64_t request_mask = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tgetattr::fid),
                      Field("request_mask", &Tgetattr::request_mask, Fmt::kHex));
  }
};

struct Rgetattr {
  NINEFOLD_WIRE_MESSAGE(Rgetattr, 25, kOnlyDotL);
  uint64_t valid = 0;
  Qid qid;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blksize = 0;
  uint64_t blocks = 0;
  uint64_t atime_sec = 0;
  uint64_t atime_nsec = 0;
  uint64_t mtime_sec = 0;
  uint64_t mtime_nsec = 0;
  uint64_t ctime_sec = 0;
  uint64_t ctime_nsec = 0;
  uint64_t btime_sec = 0;
  uint64_t btime_nsec = 0;
  uint64_t gen = 0;
  uint64_t data_version = 0;
  static constexpr auto Fields() {
    return std::tuple(
        Field("valid", &Rgetattr::valid, Fmt::kHex), Field("qid", &Rgetattr::qid),
        Field("mode", &Rgetattr::mode, Fmt::kOct), Field("uid", &Rgetattr::uid),
        Field("gid", &Rgetattr::gid), Field("nlink", &Rgetattr::nlink),
        Field("rdev", &Rgetattr::rdev), Field("size", &Rgetattr::size),
        Field("blksize", &Rgetattr::blksize), Field("blocks", &Rgetattr::blocks),
        Field("atime_sec", &Rgetattr::atime_sec), Field("atime_nsec", &Rgetattr::atime_nsec),
        Field("mtime_sec", &Rgetattr::mtime_sec), Field("mtime_nsec", &Rgetattr::mtime_nsec),
        Field("ctime_sec", &Rgetattr::ctime_sec), Field("ctime_nsec", &Rgetattr::ctime_nsec),
        Field("btime_sec", &Rgetattr::btime_sec), Field("btime_nsec", &Rgetattr::btime_nsec),
        Field("gen", &Rgetattr::gen), Field("data_version", &Rgetattr::data_version));
  }
};

struct Tsetattr {
  NINEFOLD_WIRE_MESSAGE(Tsetattr, 26, kOnlyDotL);
  uint32_t fid = 0;
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t atime_sec = 0;
  uint64_t atime_nsec = 0;
  uint64_t mtime_sec = 0;
  uint64_t mtime_nsec = 0;
  static constexpr auto Fields() {
    return std::tuple(
        Field("fid", &Tsetattr::fid), Field("valid", &Tsetattr::valid, Fmt::kHex),
        Field("mode", &Tsetattr::mode, Fmt::kOct), Field("uid", &Tsetattr::uid),
        Field("gid", &Tsetattr::gid), Field("size", &Tsetattr::size),
        Field("atime_sec", &Tsetattr::atime_sec), Field("atime_nsec", &Tsetattr::atime_nsec),
        Field("mtime_sec", &Tsetattr::mtime_sec), Field("mtime_nsec", &Tsetattr::mtime_nsec));
  }
};

struct Rsetattr {
  NINEFOLD_WIRE_MESSAGE(Rsetattr, 27, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Txattrwalk {
  NINEFOLD_WIRE_MESSAGE(Txattrwalk, 30, kOnlyDotL);
  uint32_t fid = 0;
  uint32_t newfid = 0;
  std::string_view name;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Txattrwalk::fid), Field("newfid", &Txattrwalk::newfid),
                      Field("name", &Txattrwalk::name));
  }
};

struct Rxattrwalk {
  NINEFOLD_WIRE_MESSAGE(Rxattrwalk, 31, kOnlyDotL);
  uint64_t size = 0;
  static constexpr auto Fields() { return std::tuple(Field("size", &Rxattrwalk::size)); }
};

struct Txattrcreate {
  NINEFOLD_WIRE_MESSAGE(Txattrcreate, 32, kOnlyDotL);
  uint32_t fid = 0;
  std::string_view name;
  uint64_t attr_size = 0;
  uint32_t flags = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Txattrcreate::fid), Field("name", &Txattrcreate::name),
                      Field("attr_size", &Txattrcreate::attr_size),
                      Field("flags", &Txattrcreate::flags));
  }
};

struct Rxattrcreate {
  NINEFOLD_WIRE_MESSAGE(Rxattrcreate, 33, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Treaddir {
  NINEFOLD_WIRE_MESSAGE(Treaddir, 40, kOnlyDotL);
  uint32_t fid = 0;
  uint64_t offset = 0;
  uint32_t count = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Treaddir::fid), Field("offset", &Treaddir::offset),
                      Field("count", &Treaddir::count));
  }
};

struct Rreaddir {
  NINEFOLD_WIRE_MESSAGE(Rreaddir, 41, kOnlyDotL);
  Data data;
  static constexpr auto Fields() { return std::tuple(Field("count", &Rreaddir::data)); }
};

struct Tfsync {
  NINEFOLD_WIRE_MESSAGE(Tfsync, 50, kOnlyDotL);
  uint32_t fid = 0;
  std::optional<uint32_t> datasync;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tfsync::fid), Field("datasync", &Tfsync::datasync));
  }
};

struct Rfsync {
  NINEFOLD_WIRE_MESSAGE(Rfsync, 51, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Tlock {
  NINEFOLD_WIRE_MESSAGE(Tlock, 52, kOnlyDotL);
  uint32_t fid = 0;
  uint8_t type = 0;
  uint32_t flags = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string_view client_id;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tlock::fid), Field("type", &Tlock::type),
                      Field("flags", &Tlock::flags), Field("start", &Tlock::start),
                      Field("length", &Tlock::length), Field("proc_id", &Tlock::proc_id),
                      Field("client_id", &Tlock::client_id));
  }
};

struct Rlock {
  NINEFOLD_WIRE_MESSAGE(Rlock, 53, kOnlyDotL);
  uint8_t status = 0;
  static constexpr auto Fields() { return std::tuple(Field("status", &Rlock::status)); }
};

struct Tgetlock {
  NINEFOLD_WIRE_MESSAGE(Tgetlock, 54, kOnlyDotL);
  uint32_t fid = 0;
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string_view client_id;
  static constexpr auto Fields() {
    return std::tuple(Field("fid", &Tgetlock::fid), Field("type", &Tgetlock::type),
                      Field("start", &Tgetlock::start), Field("length", &Tgetlock::length),
                      Field("proc_id", &Tgetlock::proc_id),
                      Field("client_id", &Tgetlock::client_id));
  }
};

struct Rgetlock {
  NINEFOLD_WIRE_MESSAGE(Rgetlock, 55, kOnlyDotL);
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string_view client_id;
  static constexpr auto Fields() {
    return std::tuple(Field("type", &Rgetlock::type), Field("start", &Rgetlock::start),
                      Field("length", &Rgetlock::length), Field("proc_id", &Rgetlock::proc_id),
                      Field("client_id", &Rgetlock::client_id));
  }
};

struct Tlink {
  NINEFOLD_WIRE_MESSAGE(Tlink, 70, kOnlyDotL);
  uint32_t dfid = 0;
  uint32_t fid = 0;
  std::string_view name;
  static constexpr auto Fields() {
    return std::tuple(Field("dfid", &Tlink::dfid), Field("fid", &Tlink::fid),
                      Field("name", &Tlink::name));
  }
};

struct Rlink {
  NINEFOLD_WIRE_MESSAGE(Rlink, 71, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Tmkdir {
  NINEFOLD_WIRE_MESSAGE(Tmkdir, 72, kOnlyDotL);
  uint32_t dfid = 0;
  std::string_view name;
  uint32_t mode = 0;
  uint32_t gid = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("dfid", &Tmkdir::dfid), Field("name", &Tmkdir::name),
                      Field("mode", &Tmkdir::mode, Fmt::kOct), Field("gid", &Tmkdir::gid));
  }
};

struct Rmkdir {
  NINEFOLD_WIRE_MESSAGE(Rmkdir, 73, kOnlyDotL);
  Qid qid;
  static constexpr auto Fields() { return std::tuple(Field("qid", &Rmkdir::qid)); }
};

struct Trenameat {
  NINEFOLD_WIRE_MESSAGE(Trenameat, 74, kOnlyDotL);
  uint32_t olddirfid = 0;
  std::string_view oldname;
  uint32_t newdirfid = 0;
  std::string_view newname;
  static constexpr auto Fields() {
    return std::tuple(
        Field("olddirfid", &Trenameat::olddirfid), Field("oldname", &Trenameat::oldname),
        Field("newdirfid", &Trenameat::newdirfid), Field("newname", &Trenameat::newname));
  }
};

struct Rrenameat {
  NINEFOLD_WIRE_MESSAGE(Rrenameat, 75, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

struct Tunlinkat {
  NINEFOLD_WIRE_MESSAGE(Tunlinkat, 76, kOnlyDotL);
  uint32_t dirfid = 0;
  std::string_view name;
  uint32_t flags = 0;
  static constexpr auto Fields() {
    return std::tuple(Field("dirfid", &Tunlinkat::dirfid), Field("name", &Tunlinkat::name),
                      Field("flags", &Tunlinkat::flags, Fmt::kHex));
  }
};

struct Runlinkat {
  NINEFOLD_WIRE_MESSAGE(Runlinkat, 77, kOnlyDotL);
  static constexpr auto Fields() { return std::tuple(); }
};

#undef NINEFOLD_WIRE_MESSAGE

// Every message. Adding one here is all it takes for the codec, the printer, the type
// table and the table-driven round-trip test to know it.
using Message =
    std::variant<Tversion, Rversion, Tauth, Rauth, Tattach, Rattach, Rerror, Tflush, Rflush, Twalk,
                 Rwalk, Topen, Ropen, Tcreate, Rcreate, Tread, Rread, Twrite, Rwrite, Tclunk,
                 Rclunk, Tremove, Rremove, Tstat, Rstat, Twstat, Rwstat, Rlerror, Tstatfs, Rstatfs,
                 Tlopen, Rlopen, Tlcreate, Rlcreate, Tsymlink, Rsymlink, Tmknod, Rmknod, Trename,
                 Rrename, Treadlink, Rreadlink, Tgetattr, Rgetattr, Tsetattr, Rsetattr, Txattrwalk,
                 Rxattrwalk, Txattrcreate, Rxattrcreate, Treaddir, Rreaddir, Tfsync, Rfsync, Tlock,
                 Rlock, Tgetlock, Rgetlock, Tlink, Rlink, Tmkdir, Rmkdir, Trenameat, Rrenameat,
                 Tunlinkat, Runlinkat>;

// One 9P message with its tag.
struct Frame {
  uint16_t tag = 0;
  Message msg;
  bool operator==(const Frame&) const = default;
};

}  // namespace ninefold::wire

#endif  // NINEFOLD_WIRE_MESSAGES_H_
