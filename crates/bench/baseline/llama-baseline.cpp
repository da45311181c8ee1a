// The baseline of cacheos-bench-model (issue 14): the same generation as the in-process backend, driven through
// llama.cpp's C API directly (no Rust, no queue, no channel), linked against the very static libraries the
// llama-cpp-sys-2 build produced, so the two differ only by CacheOS's wrapper. The crate's vendored sources ship
// without llama.cpp's tools (no llama-bench), hence this program. It applies the GGUF's chat template to one user
// message, evaluates the prompt in batches of 512, samples greedily up to N tokens or the end of the turn, and
// prints one JSON line per round: prompt tokens, time to first token, tokens generated and tokens/s after the first.
// Usage: llama-baseline MODEL THREADS ROUNDS MAX_TOKENS MESSAGE
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static double ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s MODEL THREADS ROUNDS MAX_TOKENS MESSAGE\n", argv[0]);
        return 2;
    }
    const int threads = std::atoi(argv[2]);
    const int rounds = std::atoi(argv[3]);
    const int max_tokens = std::atoi(argv[4]);
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    auto t_load = std::chrono::steady_clock::now();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) {
        std::fprintf(stderr, "llama-baseline: cannot load %s\n", argv[1]);
        return 1;
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096;
    cp.n_batch = 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        std::fprintf(stderr, "llama-baseline: no context\n");
        return 1;
    }
    const double load_ms = ms_since(t_load);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const char * tmpl = llama_model_chat_template(model, nullptr);
    llama_chat_message msg{"user", argv[5]};
    std::vector<char> buf(4096 + 2 * std::string(argv[5]).size());
    int n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), (int) buf.size());
    if (n < 0 || n > (int) buf.size()) {
        std::fprintf(stderr, "llama-baseline: the chat template failed\n");
        return 1;
    }
    std::string prompt(buf.data(), n);
    std::vector<llama_token> tokens(prompt.size() + 16);
    int nt = llama_tokenize(vocab, prompt.c_str(), (int) prompt.size(), tokens.data(), (int) tokens.size(), true, true);
    if (nt < 0) {
        std::fprintf(stderr, "llama-baseline: tokenizing failed\n");
        return 1;
    }
    tokens.resize(nt);
    for (int r = 0; r < rounds; r++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
        llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < nt; i += 512) {
            int len = nt - i < 512 ? nt - i : 512;
            if (llama_decode(ctx, llama_batch_get_one(tokens.data() + i, len)) != 0) {
                std::fprintf(stderr, "llama-baseline: decode failed\n");
                return 1;
            }
        }
        double first_ms = -1;
        int generated = 0;
        for (int i = 0; i < max_tokens; i++) {
            llama_token t = llama_sampler_sample(smpl, ctx, -1);
            if (first_ms < 0) first_ms = ms_since(t0);
            if (llama_vocab_is_eog(vocab, t)) break;
            generated++;
            char piece[256];
            llama_token_to_piece(vocab, t, piece, sizeof piece, 0, false);
            if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) {
                std::fprintf(stderr, "llama-baseline: decode failed\n");
                return 1;
            }
        }
        const double total_ms = ms_since(t0);
        const double tps = generated > 1 ? (generated - 1) / ((total_ms - first_ms) / 1000.0) : 0.0;
        std::printf("{\"round\":%d,\"load_ms\":%.1f,\"prompt_tokens\":%d,\"first_token_ms\":%.2f,\"tokens\":%d,"
                    "\"tokens_per_s\":%.2f}\n",
                    r, load_ms, nt, first_ms, generated, tps);
        std::fflush(stdout);
        llama_sampler_free(smpl);
    }
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
