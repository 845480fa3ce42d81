// Request handlers, private to the server library. ops.cc has the messages common to all
// dialects and 9P2000.L's; ops_classic.cc maps 9P2000 and 9P2000.u onto the FileServer.
#ifndef NINEFOLD_SRC_SERVER_OPS_H_
#define NINEFOLD_SRC_SERVER_OPS_H_

#include "connection.h"

namespace ninefold::server {

// Linux's open(2) flags for a 9P2000 Topen/Tcreate mode byte.
uint32_t OpenFlagsFromMode(uint8_t mode);

Result<Reply> HandleOpen(Connection& c, const wire::Topen& m);
Result<Reply> HandleCreate(Connection& c, const wire::Tcreate& m);
Result<Reply> HandleStat(Connection& c, const wire::Tstat& m);
Result<Reply> HandleWstat(Connection& c, const wire::Twstat& m);
// A 9P2000/.u Tread of an open directory: stat entries.
Result<Reply> HandleDirRead(Connection& c, Fid& fid, const wire::Tread& m);

}  // namespace ninefold::server

#endif  // NINEFOLD_SRC_SERVER_OPS_H_
