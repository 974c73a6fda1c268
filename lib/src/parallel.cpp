// The library's threads: a pool started on first use and kept for the process (see
// parallel.hpp). Starting and joining a std::thread costs 40-60 µs on this project's
// machines, each time: two or three times per call of forward or backward, 4-7% of a
// 24.5 MiB tensor's time on two threads.
#include "parallel.hpp"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BNORM_PAUSE() _mm_pause()
#else
#define BNORM_PAUSE() ((void)0)
#endif

namespace bnorm::detail {
namespace {

/// How long a waiting thread polls before it sleeps: a job's threads are back for the
/// next one within microseconds when forward or backward runs its passes one after the
/// other, and a wake-up from sleep costs tens of microseconds.
constexpr int kSpins = 20000; // pauses: about 0.1-0.5 ms

/// Threads 1..t−1 of a job, one job at a time; the caller is its thread 0. Never
/// destroyed: its threads wait for work until the process ends.
class Pool {
public:
    /// Runs job(ctx, k) for k in [1, t) on the pool's threads and job(ctx, 0) on the
    /// calling thread; returns when all have. False, having run nothing, when another
    /// job holds the pool (a nested call, or another thread of the program) or in a
    /// child process after fork(), whose copy of the pool has no threads. Where the system
    /// starts fewer threads than asked (a memory or process limit), the calling thread
    /// also runs the k of those missing: the same work, so the same bits.
    bool run(std::int64_t t, void (*job)(void*, std::int64_t), void* ctx) {
        if (forked_.load(std::memory_order_relaxed)) return false;
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy.owns_lock()) return false;
        while (std::int64_t(threads_.size()) < t - 1) { // a new thread waits for the next job
            const auto k = std::int64_t(threads_.size()) + 1;
            try {
                threads_.emplace_back([this, k, last = generation_.load()] { serve(k, last); });
            } catch (const std::system_error&) {
                break;
            }
        }
        const std::int64_t started = std::int64_t(threads_.size()) + 1;
        {
            std::lock_guard<std::mutex> lock(m_);
            job_ = job, ctx_ = ctx, t_ = t;
            left_.store(std::int64_t(threads_.size()), std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        job(ctx, 0);
        for (std::int64_t k = started; k < t; ++k) job(ctx, k);
        for (int i = 0; i < kSpins && left_.load(std::memory_order_acquire) != 0; ++i) BNORM_PAUSE();
        if (left_.load(std::memory_order_acquire) != 0) {
            std::unique_lock<std::mutex> lock(m_);
            done_.wait(lock, [&] { return left_.load(std::memory_order_acquire) == 0; });
        }
        return true;
    }

    static Pool& instance() {
        static Pool* pool = [] {
            auto* p = new Pool;
            pthread_atfork(nullptr, nullptr, [] { instance().forked_.store(true); });
            return p;
        }();
        return *pool;
    }

private:
    void serve(std::int64_t k, std::uint64_t seen) {
        for (;;) {
            std::uint64_t now = generation_.load(std::memory_order_acquire);
            for (int i = 0; i < kSpins && now == seen; ++i)
                BNORM_PAUSE(), now = generation_.load(std::memory_order_acquire);
            if (now == seen) {
                std::unique_lock<std::mutex> lock(m_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                now = generation_.load(std::memory_order_acquire);
            }
            seen = now;
            if (k < t_) job_(ctx_, k); // else a job of fewer threads
            // every thread answers every job: none is still reading this one's job_ and
            // t_ when the caller posts the next
            if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lock(m_); // the caller may be going to sleep
                done_.notify_one();
            }
        }
    }

    std::mutex busy_;                  // held by the calling thread for a whole job
    std::vector<std::thread> threads_; // under busy_
    std::mutex m_;                     // for sleeping and waking
    std::condition_variable wake_, done_;
    std::atomic<std::uint64_t> generation_{0}; // one more for each job
    std::atomic<std::int64_t> left_{0};        // pool threads not done with the job
    void (*job_)(void*, std::int64_t) = nullptr;
    void* ctx_ = nullptr;
    std::int64_t t_ = 0;
    std::atomic<bool> forked_{false};
};

} // namespace

bool run_on_pool(std::int64_t t, void (*job)(void*, std::int64_t), void* ctx) {
    return Pool::instance().run(t, job, ctx);
}

} // namespace bnorm::detail
