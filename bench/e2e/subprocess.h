// A server binary run as a child process for the benchmark: started with a --port_file, asked
// for its memory figures from /proc, stopped with SIGTERM.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rtnq::bench {

/// One child process that writes the port it bound to a file.
class ServerProcess {
 public:
  /// Runs `argv` (argv[0] a path) with "--port_file=<temp file>" appended and waits up to
  /// `seconds` for the port; Unavailable naming the binary when it exits or writes nothing.
  static absl::StatusOr<ServerProcess> Start(std::vector<std::string> argv, double seconds = 30);
  ServerProcess(ServerProcess&& other) noexcept;
  ServerProcess& operator=(ServerProcess&&) = delete;
  /// Stops the child (SIGTERM, then SIGKILL after 30 s) if still running.
  ~ServerProcess();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// A "VmRSS"/"VmHWM"-style field of /proc/PID/status in bytes; -1 when unreadable.
  int64_t StatusBytes(const std::string& field) const;
  /// SIGTERM and wait; the exit status as waitpid reports it (-1 when it had to be killed).
  int Stop();

 private:
  ServerProcess(pid_t pid, int port, std::string port_file);

  pid_t pid_ = -1;
  int port_ = 0;
  std::string port_file_;
};

}  // namespace rtnq::bench
