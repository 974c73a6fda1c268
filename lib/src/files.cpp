#include "bnorm/files.hpp"

#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"
#include "bnorm/npy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <span>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static_assert(std::endian::native == std::endian::little,
              "NPY output is written as little-endian straight from memory");

namespace bnorm {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

std::string parent_dir(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---- the registry of pending temporary files, for remove_pending_files ---------------
// A fixed table, so that a signal handler can read it without allocating: a slot's path
// is written before its flag is set, and the flag cleared before the slot is reused.
constexpr int kMaxPending = 32;
constexpr std::size_t kMaxPath = 4096;
char g_temp_paths[kMaxPending][kMaxPath];
volatile std::sig_atomic_t g_temp_used[kMaxPending];

int register_temp(const std::string& path) {
    if (path.size() >= kMaxPath) return -1;
    for (int i = 0; i < kMaxPending; ++i) {
        if (!g_temp_used[i]) {
            std::memcpy(g_temp_paths[i], path.c_str(), path.size() + 1);
            g_temp_used[i] = 1;
            return i;
        }
    }
    return -1; // more outputs than slots: still removed on errors, just not on signals
}

mode_t current_umask() {
    const mode_t m = ::umask(0);
    ::umask(m);
    return m;
}

} // namespace

Format format_of(const std::string& path) {
    std::string ext = path.substr(std::min(path.size(), path.find_last_of('.') == std::string::npos
                                                            ? path.size()
                                                            : path.find_last_of('.')));
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".npy") return Format::npy;
    if (ext == ".csv") return Format::csv;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) // ("out", ".", "out/")
        throw UsageError(fmt::format("{}: is a folder, not a file; bnorm reads and writes .npy and .csv files", path));
    throw UsageError(fmt::format("{}: unknown file type; bnorm reads and writes .npy and .csv", path));
}

namespace {

/// An input file opened for reading, known to be a regular file of `size` bytes.
struct InputFile {
    int fd = -1;
    std::size_t size = 0;
    explicit InputFile(const std::string& path) {
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            const int e = errno;
            throw InputError::in_file(path, e == ENOENT ? "no such file" : "cannot open: " + errno_text(e));
        }
        struct stat st {};
        if (::fstat(fd, &st) != 0) fail(path, "cannot stat: " + errno_text(errno));
        if (S_ISDIR(st.st_mode)) fail(path, "is a folder, not a file");
        if (!S_ISREG(st.st_mode)) fail(path, "is not a regular file");
        size = static_cast<std::size_t>(st.st_size);
    }
    ~InputFile() { ::close(fd); }
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

private:
    [[noreturn]] void fail(const std::string& path, const std::string& problem) {
        ::close(fd);
        fd = -1;
        throw InputError::in_file(path, problem);
    }
};

} // namespace

std::string read_file(const std::string& path) {
    const InputFile in(path);
    std::string out(in.size, '\0');
    std::size_t got = 0;
    while (got < out.size()) {
        const ssize_t r = ::read(in.fd, out.data() + got, out.size() - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw InputError::in_file(path, "read error: " + errno_text(errno));
        if (r == 0) break; // the file shrank while we read it
        got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    return out;
}

namespace {

/// Each NPY mapping is followed by 2 MiB of reserved, inaccessible address space. Mapped
/// back to back, two files of 2^k bytes plus a header land 2^k + 4 KiB apart, and on Zen 4
/// reading two arrays that far apart side by side is slow (likely aliasing in the L1 cache's
/// way predictor, which hashes address bits above 4 KiB): float64 backward on 65536 x 256,
/// one thread, measured pass A 25 ms against 19 with the gap, `bnorm backward` 63 ms of
/// user time against 55.
constexpr std::size_t kMappingGap = std::size_t(2) << 20;

/// An NPY file memory-mapped, its array used in place when the file's bytes are the
/// array's bytes (little-endian C-order float32/float64): no copy. Other files are
/// decoded into a new array and unmapped. The pages are mapped on first touch, by the
/// threads that read them (MAP_POPULATE maps them all in one thread: measured 4 ms for 67
/// MB, against under 3 for touching them); MADV_WILLNEED starts reading a cold file in.
Array load_npy(const std::string& path, bool u2_as_bfloat16) {
    const InputFile in(path);
    const std::size_t size = in.size;
    if (size == 0) return parse_npy({}, path, u2_as_bfloat16); // the error for an empty file
    const std::size_t span = size + kMappingGap;
    void* area = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void* p = area == MAP_FAILED ? MAP_FAILED : ::mmap(area, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, in.fd, 0);
    if (p == MAP_FAILED) { // e.g. a file system without mmap: read it instead
        if (area != MAP_FAILED) ::munmap(area, span);
        const std::string bytes = read_file(path);
        return parse_npy(std::as_bytes(std::span(bytes.data(), bytes.size())), path, u2_as_bfloat16);
    }
    ::madvise(p, size, MADV_WILLNEED); // advice only: its failure changes nothing
    const std::shared_ptr<std::byte> mapping(static_cast<std::byte*>(p), [span](std::byte* q) { ::munmap(q, span); });
    const std::span<const std::byte> file(mapping.get(), size);
    const NpyLayout layout = inspect_npy(file, path, u2_as_bfloat16);
    if (!layout.native) return parse_npy(file, path, u2_as_bfloat16);
    return Array::adopt(layout.dtype, layout.shape,
                        std::shared_ptr<std::byte>(mapping, mapping.get() + layout.data_offset));
}

/// A CSV file parsed from a memory mapping of it (no copy of the text, none of the page
/// faults of a fresh buffer), or from a copy where the file system cannot map it.
Array parse_csv_file(const std::string& path, DType dtype, int threads) {
    const InputFile in(path);
    void* p = in.size == 0 ? MAP_FAILED : ::mmap(nullptr, in.size, PROT_READ, MAP_PRIVATE, in.fd, 0);
    if (p == MAP_FAILED) return parse_csv(read_file(path), dtype, path, threads);
    struct Unmap {
        void* p;
        std::size_t size;
        ~Unmap() { ::munmap(p, size); }
    } unmap{p, in.size};
    ::madvise(p, in.size, MADV_SEQUENTIAL); // advice only: read ahead
    return parse_csv(std::string_view(static_cast<const char*>(p), in.size), dtype, path, threads);
}

} // namespace

Array load_array(const std::string& path, const CsvRead& csv) {
    const Format format = format_of(path);
    if (format == Format::npy) return load_npy(path, csv.dtype == DType::bf16);

    Array a = parse_csv_file(path, csv.dtype, csv.threads);
    if (!csv.shape) return a;
    const Shape& want = *csv.shape;
    const std::int64_t rows = a.shape()[0], cols = a.shape()[1];
    if (element_count(want) != a.size())
        throw InputError::in_file(path, fmt::format("{} {} has {} elements, the file has {} "
                                                    "({} {} of {})",
                                                    csv.shape_source, shape_to_string(want), element_count(want),
                                                    a.size(), rows, rows == 1 ? "row" : "rows", cols));
    if (want.empty() || want[0] != rows)
        throw InputError::in_file(path, fmt::format("{} {} needs {} rows (one per index of the "
                                                    "first axis), the file has {} {} of {}",
                                                    csv.shape_source, shape_to_string(want), want.empty() ? 1 : want[0],
                                                    rows, rows == 1 ? "row" : "rows", cols));
    a.reshape(want);
    return a;
}

// ---- PendingFile -----------------------------------------------------------------

void remove_pending_files() noexcept {
    for (int i = 0; i < kMaxPending; ++i)
        if (g_temp_used[i]) ::unlink(g_temp_paths[i]);
}

namespace {

/// The temporary file's name for a target's base name: ".<name>.tmp-XXXXXX", the name
/// cut to 200 bytes (at a UTF-8 character's start) so that a legal name of up to 255 bytes
/// still leaves room for the 13 more.
std::string temp_name(const std::string& base) {
    std::size_t keep = std::min<std::size_t>(base.size(), 200);
    while (keep > 0 && keep < base.size() && (static_cast<unsigned char>(base[keep]) & 0xC0) == 0x80) --keep;
    std::string name = ".";
    name.append(base, 0, keep);
    name += ".tmp-XXXXXX";
    return name;
}

} // namespace

PendingFile::PendingFile(std::string target) : target_(std::move(target)) {
    temp_ = parent_dir(target_) + "/" + temp_name(base_name(target_));
    fd_ = ::mkstemp(temp_.data());
    if (fd_ < 0)
        throw SystemError(fmt::format("{}: cannot create a temporary file in {}: {}", target_,
                                      parent_dir(target_), errno_text(errno)));
    slot_ = register_temp(temp_);
    // mkstemp makes the file 0600; give it the permissions a plain open() would.
    static const mode_t mask = current_umask();
    ::fchmod(fd_, 0666 & ~mask);
}

PendingFile::PendingFile(PendingFile&& o) noexcept
    : target_(std::move(o.target_)), temp_(std::move(o.temp_)), fd_(o.fd_), slot_(o.slot_) {
    o.fd_ = -1;
    o.slot_ = -1;
    o.temp_.clear();
}

PendingFile::~PendingFile() { discard(); }

void PendingFile::discard() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_.empty()) ::unlink(temp_.c_str());
    temp_.clear();
    if (slot_ >= 0) g_temp_used[slot_] = 0;
    slot_ = -1;
}

void PendingFile::reserve(std::size_t bytes) {
    if (bytes == 0) return;
    if (::fallocate(fd_, 0, 0, static_cast<off_t>(bytes)) == 0) return;
    const int e = errno;
    if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) return; // the file system cannot: writes will do
    discard();
    throw SystemError(fmt::format("{}: cannot reserve {} bytes: {}", target_, bytes, errno_text(e)));
}

void PendingFile::write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            const int e = errno;
            discard();
            throw SystemError(fmt::format("{}: write failed: {}", target_, errno_text(e)));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void PendingFile::commit() {
    if (::close(fd_) != 0) {
        const int e = errno;
        fd_ = -1;
        discard();
        throw SystemError(fmt::format("{}: write failed: {}", target_, errno_text(e)));
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
        const int e = errno;
        discard();
        throw SystemError(fmt::format("{}: cannot rename the finished temporary file onto it: {}",
                                      target_, errno_text(e)));
    }
    temp_.clear();
    if (slot_ >= 0) g_temp_used[slot_] = 0;
    slot_ = -1;
}

PendingFile write_array(const std::string& path, const Array& a, int threads) {
    const Format format = format_of(path);
    PendingFile out(path);
    if (format == Format::npy) {
        const std::string header = npy_header(a.dtype(), a.shape());
        out.write(header.data(), header.size());
        out.write(a.bytes(), a.nbytes());
    } else {
        format_csv(a, [&](std::string_view chunk) { out.write(chunk.data(), chunk.size()); }, threads);
    }
    return out;
}

// ---- check_paths -------------------------------------------------------------------

void check_paths(const std::vector<std::pair<std::string, std::string>>& inputs,
                 const std::vector<std::pair<std::string, std::string>>& outputs) {
    struct Id {
        dev_t dev;
        ino_t ino;
        std::string name; // empty for an existing file, else the base name in dir (dev, ino)
        bool operator==(const Id&) const = default;
    };
    std::vector<std::pair<Id, std::string>> input_ids;
    for (const auto& [opt, path] : inputs) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            const int e = errno;
            throw InputError::in_file(path, e == ENOENT ? "no such file" : "cannot open: " + errno_text(e));
        }
        if (S_ISDIR(st.st_mode)) throw InputError::in_file(path, "is a folder, not a file");
        if (!S_ISREG(st.st_mode)) throw InputError::in_file(path, "is not a regular file");
        input_ids.push_back({{st.st_dev, st.st_ino, {}}, opt + " " + path});
    }
    std::vector<std::pair<Id, std::string>> output_ids;
    for (const auto& [opt, path] : outputs) {
        const std::string dir = parent_dir(path);
        struct stat dst {};
        if (::stat(dir.c_str(), &dst) != 0)
            throw UsageError(fmt::format("{} {}: the folder {} does not exist", opt, path, dir));
        if (!S_ISDIR(dst.st_mode))
            throw UsageError(fmt::format("{} {}: {} is not a folder", opt, path, dir));
        if (base_name(path).empty())
            throw UsageError(fmt::format("{} {}: is a folder, not a file name", opt, path));
        Id id{dst.st_dev, dst.st_ino, base_name(path)};
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            if (S_ISDIR(st.st_mode))
                throw UsageError(fmt::format("{} {}: is a folder, not a file name", opt, path));
            id = {st.st_dev, st.st_ino, {}};
            for (const auto& [in_id, in_name] : input_ids)
                if (in_id == id)
                    throw UsageError(fmt::format("{} {} is the same file as input {}; refusing to "
                                                 "overwrite an input",
                                                 opt, path, in_name));
        }
        for (const auto& [out_id, out_name] : output_ids)
            if (out_id == id)
                throw UsageError(fmt::format("{} {} and {} are the same file", opt, path, out_name));
        output_ids.push_back({id, opt + " " + path});
    }
}

} // namespace bnorm
