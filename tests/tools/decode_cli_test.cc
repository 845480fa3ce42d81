// `ninefold decode` end to end: the real binary over the golden captures and over broken
// streams, checking its output lines, its error report and its exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout and stderr, in that order
  std::vector<std::string> lines;
};

// Runs `ninefold ARGS` with stdout to a file and stderr to another.
CliRun Ninefold(const std::string& args, const std::string& stdin_file = "") {
  fs::path dir = fs::temp_directory_path() / ("ninefold-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string cmd = std::string(NINEFOLD_BINARY) + " " + args;
  if (!stdin_file.empty()) cmd += " < '" + stdin_file + "'";
  cmd += " > '" + (dir / "out").string() + "' 2> '" + (dir / "err").string() + "'";
  CliRun r;
  int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  for (const char* name : {"out", "err"}) {
    std::ifstream in(dir / name);
    std::string line;
    while (std::getline(in, line)) {
      if (std::string(name) == "out") r.lines.push_back(line);
      r.out += line + "\n";
    }
  }
  fs::remove_all(dir);
  return r;
}

fs::path Golden(const std::string& name) { return fs::path(NINEFOLD_GOLDEN_DIR) / name; }

// Frames in a capture, counted by walking the size fields (independently of the codec).
size_t CountFrames(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t n = 0;
  for (size_t pos = 0; pos + 4 <= bytes.size(); ++n) {
    uint32_t size = 0;
    for (int i = 3; i >= 0; --i) size = size << 8 | static_cast<unsigned char>(bytes[pos + i]);
    pos += size;
  }
  return n;
}

TEST(DecodeCli, PrintsEveryMessageOfEveryCapture) {
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(NINEFOLD_GOLDEN_DIR)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".c2s" && p.extension() != ".s2c") continue;
    // diod's Rlerror refusing 9P2000.u / 9P2000 comes before any Rversion.
    bool refusal = p.filename().string().find("-c1.s2c") != std::string::npos &&
                   p.filename().string().rfind("kernel-", 0) == 0 &&
                   p.filename().string().find("kernel-L") == std::string::npos;
    CliRun r = Ninefold("decode " + std::string(refusal ? "--dialect 9P2000.L " : "") + "'" +
                        p.string() + "'");
    EXPECT_EQ(r.exit_code, 0) << p << "\n" << r.out;
    EXPECT_EQ(r.lines.size(), CountFrames(p)) << p;
    for (const std::string& line : r.lines) {
      EXPECT_TRUE(line[0] == 'T' || line[0] == 'R') << line;
      EXPECT_NE(line.find(" tag "), std::string::npos) << line;
    }
    ++files;
  }
  EXPECT_GE(files, 22u);
}

TEST(DecodeCli, FollowsTheVersionAndPrintsReadableLines) {
  CliRun r = Ninefold("decode '" + Golden("kernel-L-c1.c2s").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_GE(r.lines.size(), 2u);
  EXPECT_EQ(r.lines[0], "Tversion tag 65535 msize 131072 version '9P2000.L'");
  EXPECT_EQ(r.lines[1].rfind("Tattach tag 0 fid 0 afid 4294967295 uname 'nobody' aname '", 0), 0u)
      << r.lines[1];
}

TEST(DecodeCli, ReadsStdin) {
  CliRun r = Ninefold("decode", Golden("diodcat-c1.s2c").string());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.lines.size(), CountFrames(Golden("diodcat-c1.s2c")));
  EXPECT_EQ(r.lines[0], "Rversion tag 65535 msize 65536 version '9P2000.L'");
}

TEST(DecodeCli, NeedsADialectBeforeAnyVersion) {
  CliRun r = Ninefold("decode '" + Golden("kernel-u-c1.s2c").string() + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("frame 1 at byte 0: no dialect negotiated: Rlerror (type 7) before any "
                       "Tversion/Rversion"),
            std::string::npos)
      << r.out;
  CliRun fixed = Ninefold("decode --dialect 9p2000.l '" + Golden("kernel-u-c1.s2c").string() + "'");
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out;
  ASSERT_EQ(fixed.lines.size(), 1u);
  EXPECT_EQ(fixed.lines[0], "Rlerror tag 65535 ecode 5");
}

TEST(DecodeCli, MalformedFrameSaysWhereAndWhyAndExits1) {
  // A real capture, cut in the middle of its third frame.
  fs::path src = Golden("diodcat-c1.c2s");
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t first = static_cast<unsigned char>(bytes[0]);
  size_t second = static_cast<unsigned char>(bytes[first]);
  fs::path cut = fs::temp_directory_path() / ("ninefold-cut-" + std::to_string(::getpid()));
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, first + second + 5);
  CliRun r = Ninefold("decode '" + cut.string() + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.lines.size(), 2u);  // the two whole frames are still printed
  EXPECT_NE(r.out.find("frame 3 at byte " + std::to_string(first + second) +
                       ": truncated frame: stream ends after 5 of its bytes"),
            std::string::npos)
      << r.out;

  // The same capture with its second frame's size field doubled: the frame then
  // swallows the next one and the fields no longer account for its bytes.
  std::string bad = bytes;
  bad[first] = static_cast<char>(second * 2);
  std::ofstream(cut, std::ios::binary | std::ios::trunc) << bad;
  r = Ninefold("decode '" + cut.string() + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("frame 2 at byte " + std::to_string(first)), std::string::npos) << r.out;
  fs::remove(cut);
}

TEST(DecodeCli, UnknownVersionStringStillPrints) {
  // Found by the stream fuzzer: a Tversion naming no dialect left none chosen, and
  // printing read an empty optional.
  fs::path f = fs::temp_directory_path() / ("ninefold-v9p-" + std::to_string(::getpid()));
  std::ofstream(f, std::ios::binary)
      << std::string("\x0f\x00\x00\x00\x64\xff\xff\x00\x20\x00\x00\x02\x00\x39\x50", 15);
  CliRun r = Ninefold("decode '" + f.string() + "'");
  fs::remove(f);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.lines[0], "Tversion tag 65535 msize 8192 version '9P'");
}

TEST(DecodeCli, UsageErrorsExit2) {
  EXPECT_EQ(Ninefold("decode --dialect 9P1999 /dev/null").exit_code, 2);
  CliRun missing = Ninefold("decode /nonexistent/capture");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("/nonexistent/capture: No such file or directory"), std::string::npos);
  EXPECT_EQ(Ninefold("decode /dev/null").exit_code, 0);  // an empty stream is fine
}

}  // namespace
