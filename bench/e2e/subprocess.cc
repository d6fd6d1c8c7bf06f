#include "bench/e2e/subprocess.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace rtnq::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Waits up to `seconds` for `pid` to exit; its wait status, or -1 on timeout.
int WaitExit(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

}  // namespace

absl::StatusOr<ServerProcess> ServerProcess::Start(std::vector<std::string> argv, double seconds) {
  char dir_template[] = "/tmp/rtnq-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string port_file = absl::StrCat(dir_template, "/port");
  argv.push_back("--port_file=" + port_file);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    execv(args[0], args.data());
    _exit(127);
  }
  ServerProcess process(pid, 0, port_file);
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    std::ifstream in(port_file);
    if (in >> process.port_ && process.port_ > 0) return process;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      process.pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat(argv[0], " exited before writing its port (wait status ", status, ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::UnavailableError(absl::StrCat(argv[0], " wrote no port within ", seconds, " s"));
}

ServerProcess::ServerProcess(pid_t pid, int port, std::string port_file)
    : pid_(pid), port_(port), port_file_(std::move(port_file)) {}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept
    : pid_(other.pid_), port_(other.port_), port_file_(std::move(other.port_file_)) {
  other.pid_ = -1;
  other.port_file_.clear();
}

ServerProcess::~ServerProcess() {
  Stop();
  if (!port_file_.empty()) {
    unlink(port_file_.c_str());
    rmdir(port_file_.substr(0, port_file_.rfind('/')).c_str());
  }
}

int64_t ServerProcess::StatusBytes(const std::string& field) const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream values(line.substr(field.size() + 1));
    int64_t kib = -1;
    values >> kib;
    return kib < 0 ? -1 : kib * 1024;
  }
  return -1;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return 0;
  kill(pid_, SIGTERM);
  int status = WaitExit(pid_, 30);
  if (status == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    status = -1;
  }
  pid_ = -1;
  return status;
}

}  // namespace rtnq::bench
