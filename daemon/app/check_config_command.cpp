// `callbackd check-config`: everything that would stop `run` at start-up, checked without
// starting: the YAML, the database and schema version, and every tenant's key files. Every
// problem is named (not just the first), so that one run of the command is one round of fixes.
// Run it before a deploy; the systemd unit does not run it before each start (see the unit).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/commands.h"
#include "core/config.h"
#include "core/credentials.h"
#include "core/desired/notify_host.h"
#include "core/tenant.h"
#include "core/wechatpay/platform_certificates.h"
#include "pg/conninfo.h"
#include "pg/migrator.h"
#include "pg/tenants.h"

namespace callbackd::app {

std::optional<Problem> platform_ca_problem(const Config& config) {
  if (!config.wechatpay.platform_ca_file) return std::nullopt;
  auto ca = wechatpay::load_platform_ca_file(*config.wechatpay.platform_ca_file);
  if (ca) return std::nullopt;
  return Problem{config.source_path + ": wechatpay.platform_ca_file", ca.error().message, ca.error().fix};
}

int run_check_config(const CliRequest& req) {
  const Config config = load_config(req.config_path);  // StartupError lists every YAML problem
  std::vector<Problem> problems;

  if (config.wechatpay.ca_file) {
    if (FILE* f = std::fopen(config.wechatpay.ca_file->c_str(), "r"))
      std::fclose(f);
    else
      problems.push_back({config.source_path + ": wechatpay.ca_file",
                          "cannot read " + *config.wechatpay.ca_file + ": " + std::strerror(errno),
                          "point it at a readable PEM CA bundle, or remove the key to use the system store"});
  }

  if (auto problem = platform_ca_problem(config)) problems.push_back(*problem);

  if (auto problem = credentials_dir_problem(config.credentials_dir, config.source_path)) problems.push_back(*problem);

  const std::string where = pg::describe_conninfo(config.database.url);
  std::vector<TenantRow> tenants;
  try {
    const pg::SchemaStatus schema = pg::schema_status(config.database, pg::embedded_migrations());
    for (const auto& p : schema.problems) problems.push_back(p);
    if (!schema.pending.empty())
      problems.push_back({"database " + where,
                          "schema version " + std::to_string(schema.database_version) + ", this binary needs " +
                              std::to_string(schema.binary_version),
                          "run `callbackd migrate`"});
    if (schema.database_version > 0) tenants = pg::load_tenants(config.database);
  } catch (const DatabaseError& e) {
    problems.push_back({"database " + where, e.what(), "check database.url and that PostgreSQL is running"});
  }

  std::size_t tenants_ok = 0;
  for (const auto& tenant : tenants) {
    // A list that allows nothing because of a typo holds every row of the tenant as invalid.
    if (tenant.allowed_notify_hosts)
      for (const auto& problem : desired::parse_allowed_hosts(*tenant.allowed_notify_hosts).problems)
        problems.push_back({"tenant '" + tenant.tenant_id + "': allowed_notify_hosts", problem,
                            "UPDATE callbackd.tenants SET allowed_notify_hosts = '{hooks.example.com, "
                            "*.example.com}' WHERE tenant_id = '" +
                                tenant.tenant_id + "'"});
    auto loaded = load_tenant_credentials(tenant, config.credentials_dir);
    if (loaded)
      ++tenants_ok;
    else
      problems.insert(problems.end(), loaded.error().begin(), loaded.error().end());
  }
  if (!problems.empty()) throw StartupError(problems);
  std::cout << config.source_path << ": valid; database " << where << " up to date; " << tenants_ok
            << " tenant(s) with readable, matching keys\n";
  return 0;
}

}  // namespace callbackd::app
