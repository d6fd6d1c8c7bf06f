// The server's memory under the hostile-input review's load shapes (issue 13): rows wider than
// the budgets on many streams, and many streams of whole-tensor (buffered) work. Peak RSS of a
// rtnq-server child process against the bound of docs/PROTOCOL.md ("Memory and backpressure").
#pragma once

#include <string>

namespace rtnq::bench {

/// Runs each case on a fresh `server_binary` and prints a table; 0 when every case completed.
int HostileRss(const std::string& server_binary);

}  // namespace rtnq::bench
