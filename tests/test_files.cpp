// PendingFile and the library's signal contract: it keeps a registry of temporary files
// that remove_pending_files empties, and installs no signal handler of its own.
#include "bnorm/files.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace bnorm;
namespace fs = std::filesystem;

namespace {

/// A fresh folder under the system's temporary folder, removed with its content.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "bnorm-files-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() { fs::remove_all(path); }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
        return out;
    }
};

/// The handler the process has for sig now.
void (*handler_of(int sig))(int) {
    struct sigaction sa {};
    REQUIRE(::sigaction(sig, nullptr, &sa) == 0);
    return sa.sa_handler;
}

} // namespace

TEST_CASE("PendingFile: the library installs no signal handler") {
    // Whatever the test runner installed (doctest: SIGINT, SIGTERM; AddressSanitizer:
    // SIGBUS, SIGSEGV), an output file must leave every handler as it was.
    const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGBUS, SIGXFSZ};
    std::vector<void (*)(int)> before;
    for (int sig : signals) before.push_back(handler_of(sig));
    const TempDir dir;
    PendingFile f((dir.path / "out.npy").string());
    f.write("x", 1);
    for (std::size_t i = 0; i < std::size(signals); ++i) {
        CAPTURE(signals[i]);
        CHECK((handler_of(signals[i]) == before[i]));
    }
    // (SIGHUP and SIGXFSZ are compared with what the process inherited, not with SIG_DFL:
    // under nohup, SIGHUP starts ignored)
}

TEST_CASE("remove_pending_files removes the temporary files not yet committed, and only those") {
    const TempDir dir;
    PendingFile done((dir.path / "done.csv").string());
    done.write("1\n", 2);
    done.commit();
    PendingFile a((dir.path / "a.npy").string());
    PendingFile b((dir.path / "b.csv").string());
    a.write("abc", 3);
    CHECK(dir.names().size() == 3); // done.csv and two temporary files
    remove_pending_files();
    CHECK(dir.names() == std::vector<std::string>{"done.csv"});
    remove_pending_files(); // again: nothing left to remove, no harm
    CHECK(dir.names() == std::vector<std::string>{"done.csv"});
}

TEST_CASE("remove_pending_files forgets the files once committed or destroyed") {
    const TempDir dir;
    {
        PendingFile gone((dir.path / "gone.npy").string());
    }
    PendingFile kept((dir.path / "kept.npy").string());
    kept.write("k", 1);
    kept.commit();
    remove_pending_files();
    CHECK(dir.names() == std::vector<std::string>{"kept.npy"});
}
