// RunQuantize through the remote backend against an in-process rtnq server: the checkpoint it
// writes is byte-identical to local mode's, for every output format.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include "client/checkpoint_util.h"
#include "client/local_backend.h"
#include "client/quantize_run.h"
#include "client/remote/remote_backend.h"
#include "client/synth/synth_checkpoint.h"
#include "core/engine.h"
#include "core/io/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;

TEST(QuantizeRunRemoteTest, RemoteOutputIsByteIdenticalToLocal) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("rtnq_run_remote_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::unique_ptr<Engine> engine = *Engine::Create({2, ""});
  SynthOptions so;
  so.shape = *SynthShapeByName("tiny");
  so.output_dir = (dir / "in").string();
  so.shards = 2;
  ASSERT_THAT(WriteSynthCheckpoint(so, *engine), IsOk());

  const std::unique_ptr<server::RtnqServer> server =
      server::testing::StartServer(server::testing::TestOptions());
  ASSERT_NE(server, nullptr);
  ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server->port());
  const std::unique_ptr<RemoteBackend> remote = *RemoteBackend::Create(co);
  const std::unique_ptr<LocalBackend> local = *LocalBackend::Create({2, ""});

  for (OutputLayout f : {OutputLayout::kFake, OutputLayout::kInc, OutputLayout::kGptq}) {
    SCOPED_TRACE(OutputLayoutName(f));
    QuantizeRunOptions o;
    o.input = (dir / "in").string();
    o.format = f;
    o.config_json = R"({"bits": 4, "group_size": 64, "weight_config": {"*.v_proj": {"bits": 8}}})";
    o.streams = 2;
    std::ostringstream quiet;
    Progress progress(ProgressMode::kQuiet, quiet);
    o.output = (dir / ("local-" + OutputLayoutName(f))).string();
    ASSERT_THAT(RunQuantize(o, *local, progress), IsOk());
    o.output = (dir / ("remote-" + OutputLayoutName(f))).string();
    const absl::StatusOr<QuantizeOutcome> r = RunQuantize(o, *remote, progress);
    ASSERT_THAT(r, IsOk());
    for (const TensorReport& t : r->tensors) {
      if (t.action == "quantized") {
        EXPECT_NE(t.served_by, "local") << t.name;
      }
    }
    for (const std::string& file : r->summary.files) {
      EXPECT_TRUE(*ReadFileToString((dir / ("local-" + OutputLayoutName(f)) / file).string()) ==
                  *ReadFileToString((dir / ("remote-" + OutputLayoutName(f)) / file).string()))
          << file;
    }
  }
  server->Shutdown(1);
}

}  // namespace
}  // namespace rtnq::client
