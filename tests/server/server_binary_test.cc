// The rtnq-server binary as a subprocess: it binds 127.0.0.1:0, writes the port to --port_file,
// serves, and on SIGTERM shuts down gracefully and exits 0.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/harness.h"

#ifndef RTNQ_SERVER_BINARY
#error "RTNQ_SERVER_BINARY must name the rtnq-server binary"
#endif

namespace rtnq::server::testing {
namespace {

using Clock = std::chrono::steady_clock;

pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds` for the child; its wait status, or -1 on timeout.
int WaitExit(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

int ReadPort(const std::string& path, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

TEST(ServerBinaryTest, ServesAndExitsZeroOnSigterm) {
  TempDir dir;
  const std::string port_file = dir.File("port");
  const pid_t pid = Spawn({RTNQ_SERVER_BINARY, "--listen=127.0.0.1:0", "--port_file=" + port_file,
                           "--threads=1", "--shutdown_grace=5", "--log_level=warn"});
  ASSERT_GT(pid, 0);
  const int port = ReadPort(port_file, 20);
  if (port == 0) kill(pid, SIGKILL);
  ASSERT_GT(port, 0) << "no port written to " << port_file;

  auto stub = Stub(port);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ServerInfo info;
  EXPECT_TRUE(stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.threads(), 1);
  std::vector<v1::QuantizeRequest> requests{ConfigRequest(v1::SessionConfig())};
  for (auto& r : TensorRequests(RandomTensor("a.weight", "BF16", {16, 64}, 1), 300)) {
    requests.push_back(std::move(r));
  }
  const SessionResult r = RunSession(*stub, requests);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.summary.has_value());
  EXPECT_EQ(r.summary->tensors_ok(), 1);

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  const int status = WaitExit(pid, 20);
  if (status == -1) kill(pid, SIGKILL);
  ASSERT_NE(status, -1) << "rtnq-server did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ServerBinaryTest, BadFlagsExitNonZero) {
  const pid_t pid =
      Spawn({RTNQ_SERVER_BINARY, "--listen=127.0.0.1:0", "--max_streams=0", "--log_level=off"});
  ASSERT_GT(pid, 0);
  const int status = WaitExit(pid, 20);
  if (status == -1) kill(pid, SIGKILL);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace rtnq::server::testing
