# Generates a .cpp that carries .sql files in the binary. Run at build time by
# daemon/pg/CMakeLists.txt, once per kind:
#   cmake -DKIND=migrations -DSQL_DIR=.../migrations -DOUTPUT=... -P embed_sql.cmake
#     every NNNN_name.sql as a Migration (pg/migrator.h): the binary always carries the schema
#     it was built for;
#   cmake -DKIND=statements -DSQL_DIR=.../daemon/pg/sql -DOUTPUT=... -P embed_sql.cmake
#     every name.sql as a Statement (pg/statements.h): the file name is the prepared
#     statement's name, so no name is written twice.
# Bytes are emitted as a hex array rather than a raw string literal so that no file content
# (a `)"` sequence, non-ASCII comments) can break the generated source.
cmake_minimum_required(VERSION 3.25)

file(GLOB files RELATIVE "${SQL_DIR}" "${SQL_DIR}/*.sql")
list(SORT files)

# Appends `const unsigned char <array>[] = {...};` for `file` to `arrays` and sets
# `<size_var>` to its length in bytes.
function(embed_bytes file array size_var)
  file(READ "${SQL_DIR}/${file}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  set(arrays "${arrays}const unsigned char ${array}[] = {${bytes}};\n" PARENT_SCOPE)
  set(${size_var} ${size} PARENT_SCOPE)
endfunction()

set(arrays "")
set(entries "")
if(KIND STREQUAL "migrations")
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
    embed_bytes("${f}" "m${digits}" size)
    string(APPEND entries
      "      {${version}, \"${f}\", std::string(reinterpret_cast<const char*>(m${digits}), ${size})},\n")
  endforeach()
  set(source "migrations/*.sql")
  set(header "pg/migrator.h")
  set(accessor "const std::vector<Migration>& embedded_migrations() {
  static const std::vector<Migration> all{
${entries}  };
  return all;
}")
elseif(KIND STREQUAL "statements")
  foreach(f IN LISTS files)
    if(NOT f MATCHES "^([a-z][a-z0-9_]*)\\.sql$")
      message(FATAL_ERROR "daemon/pg/sql/${f}: a statement file must be named name.sql "
                          "(lower-case letters, digits or underscores: the prepared statement's name)")
    endif()
    set(name "${CMAKE_MATCH_1}")
    embed_bytes("${f}" "s_${name}" size)
    string(APPEND entries
      "      {\"${name}\", std::string(reinterpret_cast<const char*>(s_${name}), ${size})},\n")
  endforeach()
  set(source "daemon/pg/sql/*.sql")
  set(header "pg/statements.h")
  set(accessor "const std::vector<Statement>& embedded_statements() {
  static const std::vector<Statement> all{
${entries}  };
  return all;
}")
else()
  message(FATAL_ERROR "embed_sql.cmake: KIND must be migrations or statements, not '${KIND}'")
endif()

set(content "// Generated from ${source} by daemon/pg/embed_sql.cmake. Do not edit.
#include <string>
#include <vector>

#include \"${header}\"

namespace callbackd::pg {
namespace {
${arrays}}  // namespace

${accessor}

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
