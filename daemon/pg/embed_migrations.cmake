# Generates a .cpp holding every migrations/NNNN_name.sql, so that the binary always carries
# the schema it was built for. Run at build time by daemon/pg/CMakeLists.txt:
#   cmake -DMIGRATIONS_DIR=... -DOUTPUT=... -P embed_migrations.cmake
# Bytes are emitted as a hex array rather than a raw string literal so that no file content
# (a `)"` sequence, non-ASCII comments) can break the generated source.
cmake_minimum_required(VERSION 3.25)

file(GLOB files RELATIVE "${MIGRATIONS_DIR}" "${MIGRATIONS_DIR}/*.sql")
list(SORT files)

set(arrays "")
set(entries "")
set(seen_versions "")
foreach(f IN LISTS files)
  if(NOT f MATCHES "^([0-9][0-9][0-9][0-9])_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "migrations/${f}: a migration file must be named NNNN_name.sql "
                        "(four digits, underscore, lower-case letters, digits or underscores)")
  endif()
  set(digits "${CMAKE_MATCH_1}")
  # Strip leading zeros so that 0008 is not read as octal by the compiler.
  string(REGEX REPLACE "^0+" "" version "${digits}")
  if(version STREQUAL "")
    message(FATAL_ERROR "migrations/${f}: version 0000 is reserved; start at 0001")
  endif()
  if(version IN_LIST seen_versions)
    message(FATAL_ERROR "migrations/${f}: version ${digits} is used by two files")
  endif()
  list(APPEND seen_versions "${version}")

  file(READ "${MIGRATIONS_DIR}/${f}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND arrays "const unsigned char m${digits}[] = {${bytes}};\n")
  string(APPEND entries
    "      {${version}, \"${f}\", std::string(reinterpret_cast<const char*>(m${digits}), ${size})},\n")
endforeach()

set(content "// Generated from migrations/*.sql by daemon/pg/embed_migrations.cmake. Do not edit.
#include <string>
#include <vector>

#include \"pg/migrator.h\"

namespace callbackd::pg {
namespace {
${arrays}}  // namespace

const std::vector<Migration>& embedded_migrations() {
  static const std::vector<Migration> migrations{
${entries}  };
  return migrations;
}

}  // namespace callbackd::pg
")

# Rewriting an unchanged file would recompile it on every build.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${content}")
