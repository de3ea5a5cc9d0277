// Runs a fuzz target's LLVMFuzzerTestOneInput over every file of the corpus directories given
// on the command line, so that seed corpora (and any crash reproducer added to them) run as
// ordinary regression tests in the normal build, without libFuzzer.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i]))
      if (entry.is_regular_file()) paths.push_back(entry.path());
    for (const auto& path : paths) {
      std::ifstream in(path, std::ios::binary);
      const std::string input((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
      ++files;
    }
  }
  std::printf("ran %zu corpus files\n", files);
  return files > 0 ? 0 : 1;  // an empty corpus is a packaging mistake, not a pass
}
