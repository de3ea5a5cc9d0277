// What the sandbox accepts as a favor/callbacks request body (seed document), checked the way
// WeChat Pay answers: 400 PARAM_ERROR with a message naming the field. Pure; never throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace callbackd::sandbox {

struct FavorSetRequest {
  std::string sub_mchid;  // the sub-merchant whose notify URL is set
  std::string notify_url;
  std::optional<bool> push_switch;  // "switch"; absent means unchanged (on for a new setting)
};

struct ParamError {
  std::string message;  // names the field: "mchid: 商户号必填 (a string of 1-20 characters)"
};

// {"mchid": string(1..20), "notify_url": string(1..256), "switch": bool (optional)}.
// Lengths count Unicode characters of valid UTF-8 (invalid UTF-8 is refused). Unknown fields
// are ignored, as WeChat Pay does. Malformed JSON or a non-object is a ParamError too.
Result<FavorSetRequest, ParamError> parse_favor_set_request(std::string_view body);

// The mchid of `GET /v3/marketing/favor/callbacks?mchid=...` (request target after the path);
// a ParamError when absent, empty or longer than 20 characters.
Result<std::string, ParamError> parse_favor_query(std::string_view query);

// The body of POST /sandbox/set (docs/sandbox.md): {"mchid": "…", "notify_url": "…"[, "switch":
// bool]}, or a JSON array of them: changes made out of band (in the merchant platform, by another
// tool). An empty notify_url removes the setting (a read then answers 404 RESOURCE_NOT_EXISTS).
// All or nothing: one bad element refuses the body, naming its index.
Result<std::vector<FavorSetRequest>, ParamError> parse_out_of_band_set(std::string_view body);

// Counts the characters of valid UTF-8; nullopt for invalid UTF-8.
std::optional<std::size_t> utf8_length(std::string_view s);

}  // namespace callbackd::sandbox
