# Read by llama.cpp's CMake right after its project() call (CMAKE_PROJECT_llama.cpp_INCLUDE,
# set by scripts/build_llama.sh). llama-cpp-python forces LLAMA_BUILD_COMMON on, but its
# Python code loads only libllama and libggml*: the common library (argument parsing, chat
# templates, JSON) serves llama.cpp's tools and the multimodal library, which deckgen does not
# build. Leaving it out takes the build from about 6 minutes to under 2 on 2 cores.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama.cpp common library (not used by deckgen)" FORCE)
