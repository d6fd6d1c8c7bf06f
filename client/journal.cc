#include "client/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include "core/io/file_io.h"

namespace rtnq::client {
namespace {

std::string Line(const JournalEntry& e) {
  nlohmann::ordered_json j;
  j["tensor"] = e.tensor;
  j["input_crc32c"] = e.input_crc32c;
  nlohmann::ordered_json outs = nlohmann::ordered_json::array();
  for (const auto& [name, crc] : e.outputs) outs.push_back({{"name", name}, {"crc32c", crc}});
  j["outputs"] = std::move(outs);
  j["report"] = e.report;
  return j.dump() + "\n";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Journal>> Journal::Create(const std::string& path,
                                                         const std::vector<JournalEntry>& entries) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "create", path);
  std::unique_ptr<Journal> j(new Journal(path, fd));
  for (const JournalEntry& e : entries) {
    if (absl::Status s = j->Append(e); !s.ok()) return s;
  }
  return j;
}

std::vector<JournalEntry> Journal::Load(const std::string& path) {
  std::vector<JournalEntry> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: torn by a kill mid-write
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("tensor") || !j["tensor"].is_string() ||
        !j.contains("outputs") || !j["outputs"].is_array()) {
      continue;
    }
    JournalEntry e;
    e.tensor = j["tensor"].get<std::string>();
    if (!j.contains("input_crc32c") || !j["input_crc32c"].is_number_unsigned()) continue;
    e.input_crc32c = j["input_crc32c"].get<uint32_t>();
    bool ok = true;
    for (const auto& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string() ||
          !o.contains("crc32c") || !o["crc32c"].is_number_unsigned()) {
        ok = false;
        break;
      }
      e.outputs.emplace_back(o["name"].get<std::string>(), o["crc32c"].get<uint32_t>());
    }
    if (!ok) continue;
    if (j.contains("report")) e.report = j["report"];
    out.push_back(std::move(e));
  }
  return out;
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Journal::Append(const JournalEntry& entry) {
  const std::string line = Line(entry);
  std::lock_guard<std::mutex> lock(mu_);
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    return ErrnoError(n < 0 ? errno : EIO, "append to", path_);
  }
  return absl::OkStatus();
}

}  // namespace rtnq::client
