// The two Boost 1.74 + g++ 12 fixes every translation unit that writes Asio coroutines needs,
// in one place (docs/platform-notes.md). Include this before any other Asio header.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

// g++ 12 reports -Wmismatched-new-delete at the end of many coroutines: Asio 1.18 gives its
// coroutine frames a class-specific operator new/delete pair (a recycling allocator) that the
// warning's heuristic does not match up. A false positive; silenced for the rest of the TU
// because it fires at every coroutine definition, including the caller's lambdas.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <boost/asio/awaitable.hpp>
