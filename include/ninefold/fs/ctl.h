// ctl: the synthetic tree diod serves under aname "ctl", which diod's tools read.
//
//   std::unique_ptr<FileServer> ctl = MakeCtlServer();   // serve it under aname "ctl"
//
// Files, as diod 1.0.24 shows them (diodls -a ctl -l /):
//   version   0444  "ninefold 0.1.0\n"
//   date      0444  "<sec>.<usec> <tz_minuteswest>.<tz_dsttime>\n" from gettimeofday(2),
//                   the format dioddate scans ("%lu.%lu %d.%d"; usec is not zero-padded)
//   zero      0444  every read returns `count` zero bytes, at any offset (diodload)
//   zero100   0444  zero, after sleeping 100 ms per read (to test Tflush)
//   null      0666  writes are taken whole and discarded; reads return end of file
//   null100   0666  null, after sleeping 100 ms per write
//   meminfo   0444  /proc/meminfo, as diod serves it
// Text files are taken once per open (see synthetic.h). diod's server-internal files
// (connections, tpools, exports, usercache, files) describe diod itself; a server that
// wants equivalents adds them to MakeCtlDir()'s result before serving it.
//
// Thread safety: as synthetic.h; every callback here is stateless.
#ifndef NINEFOLD_FS_CTL_H_
#define NINEFOLD_FS_CTL_H_

#include <memory>
#include <string_view>

#include "ninefold/fs/file_server.h"
#include "ninefold/fs/synthetic.h"

namespace ninefold::fs {

// The contents of `version`.
inline constexpr std::string_view kCtlVersion = "ninefold 0.1.0\n";

// The tree above, to serve as is or extend.
std::shared_ptr<SyntheticDir> MakeCtlDir();
// MakeSyntheticServer(MakeCtlDir()).
std::unique_ptr<FileServer> MakeCtlServer();

}  // namespace ninefold::fs

#endif  // NINEFOLD_FS_CTL_H_
