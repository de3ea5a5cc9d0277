# The Debian packages (issue 19; docs/install.md): `./scripts/package` runs CPack's DEB
# generator on the release build. Two packages, one per component, so that production hosts
# never get the sandbox:
#   callbackd          /usr/bin/callbackd, the unit (/lib/systemd/system, not enabled: the
#                      daemon needs its database and keys first), /etc/callbackd/callbackd.yaml
#                      (a conffile), the docs, SQL examples and the Grafana dashboard under
#                      /usr/share/doc/callbackd, callbackd(1) generated from docs/cli.md
#   callbackd-sandbox  /usr/bin/callbackd-sandbox, callbackd-sandbox(1) from docs/sandbox.md, its doc
# Binaries are stripped (CPACK_STRIP_FILES); the debug information stays in the build tree
# (build/release), never in a package. Dependencies come from dpkg-shlibdeps.

set(CALLBACKD_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)
set(CALLBACKD_DOC_DIR share/doc/callbackd)
set(CALLBACKD_GENERATED_DOCS ${CMAKE_BINARY_DIR}/package-files)

# Generated from the docs on every build, so the package never carries a stale copy.
add_custom_command(
  OUTPUT ${CALLBACKD_GENERATED_DOCS}/callbackd.1.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CALLBACKD_GENERATED_DOCS}
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/docgen man callbackd ${PROJECT_VERSION} ${PROJECT_SOURCE_DIR}/docs/cli.md
          ${CALLBACKD_GENERATED_DOCS}/callbackd.1
  # -n: no name or time stamp in the header, so that the package is reproducible.
  COMMAND gzip -9nf ${CALLBACKD_GENERATED_DOCS}/callbackd.1
  DEPENDS ${PROJECT_SOURCE_DIR}/docs/cli.md ${PROJECT_SOURCE_DIR}/scripts/docgen
  COMMENT "callbackd(1) from docs/cli.md"
  VERBATIM)
add_custom_command(
  OUTPUT ${CALLBACKD_GENERATED_DOCS}/callbackd-sandbox.1.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CALLBACKD_GENERATED_DOCS}
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/docgen man callbackd-sandbox ${PROJECT_VERSION}
          ${PROJECT_SOURCE_DIR}/docs/sandbox.md ${CALLBACKD_GENERATED_DOCS}/callbackd-sandbox.1
  COMMAND gzip -9nf ${CALLBACKD_GENERATED_DOCS}/callbackd-sandbox.1
  DEPENDS ${PROJECT_SOURCE_DIR}/docs/sandbox.md ${PROJECT_SOURCE_DIR}/scripts/docgen
  COMMENT "callbackd-sandbox(1) from docs/sandbox.md"
  VERBATIM)
add_custom_command(
  OUTPUT ${CALLBACKD_GENERATED_DOCS}/sql-examples.sql
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CALLBACKD_GENERATED_DOCS}
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/docgen sql ${PROJECT_SOURCE_DIR}/docs/sql.md
          ${CALLBACKD_GENERATED_DOCS}/sql-examples.sql
  DEPENDS ${PROJECT_SOURCE_DIR}/docs/sql.md ${PROJECT_SOURCE_DIR}/scripts/docgen
  COMMENT "SQL examples from docs/sql.md"
  VERBATIM)
# Debian's changelog and the conffile are compressed/derived here, not by CPack.
add_custom_command(
  OUTPUT ${CALLBACKD_GENERATED_DOCS}/changelog.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CALLBACKD_GENERATED_DOCS}
  COMMAND sh -c "gzip -9nc '${CALLBACKD_PACKAGING_DIR}/changelog' > '${CALLBACKD_GENERATED_DOCS}/changelog.gz'"
  DEPENDS ${CALLBACKD_PACKAGING_DIR}/changelog
  VERBATIM)
# The installed config is the example with one line changed: the example sets credentials_dir
# to /etc/callbackd/keys, which is root-only; under the packaged unit the keys arrive through
# LoadCredential= and credentials_dir must stay unset ($CREDENTIALS_DIRECTORY, docs/install.md).
add_custom_command(
  OUTPUT ${CALLBACKD_GENERATED_DOCS}/callbackd.yaml
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CALLBACKD_GENERATED_DOCS}
  COMMAND sh -c "sed 's|^credentials_dir: /etc/callbackd/keys$|# Under systemd (the packaged unit) leave this unset: $CREDENTIALS_DIRECTORY.\\n#credentials_dir: /etc/callbackd/keys|' '${PROJECT_SOURCE_DIR}/config/callbackd.example.yaml' > '${CALLBACKD_GENERATED_DOCS}/callbackd.yaml'"
  DEPENDS ${PROJECT_SOURCE_DIR}/config/callbackd.example.yaml
  VERBATIM)
add_custom_target(callbackd_package_files ALL
  DEPENDS ${CALLBACKD_GENERATED_DOCS}/callbackd.1.gz ${CALLBACKD_GENERATED_DOCS}/callbackd-sandbox.1.gz
          ${CALLBACKD_GENERATED_DOCS}/sql-examples.sql
          ${CALLBACKD_GENERATED_DOCS}/changelog.gz ${CALLBACKD_GENERATED_DOCS}/callbackd.yaml)

# --- callbackd ---------------------------------------------------------------------------
install(TARGETS callbackd RUNTIME DESTINATION bin COMPONENT callbackd)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/callbackd.service DESTINATION /lib/systemd/system
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT callbackd)
# 0644: the unit's dynamic user reads it (it holds no secrets; docs/install.md).
install(FILES ${CALLBACKD_GENERATED_DOCS}/callbackd.yaml DESTINATION /etc/callbackd
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT callbackd)
install(FILES ${CALLBACKD_GENERATED_DOCS}/callbackd.1.gz DESTINATION share/man/man1 COMPONENT callbackd)
install(FILES README.md docs/install.md docs/operations.md docs/runbook.md docs/config.md docs/cli.md docs/sql.md
              docs/security.md docs/architecture.md docs/pacing.md docs/reliability.md
              ${CALLBACKD_PACKAGING_DIR}/copyright ${CALLBACKD_GENERATED_DOCS}/changelog.gz
        DESTINATION ${CALLBACKD_DOC_DIR} COMPONENT callbackd)
install(FILES ${CALLBACKD_GENERATED_DOCS}/sql-examples.sql ${PROJECT_SOURCE_DIR}/systemd/callbackd.env
              ${PROJECT_SOURCE_DIR}/config/callbackd.example.yaml
        DESTINATION ${CALLBACKD_DOC_DIR}/examples COMPONENT callbackd)
install(FILES docs/grafana/callbackd.json DESTINATION ${CALLBACKD_DOC_DIR}/grafana COMPONENT callbackd)

# --- callbackd-sandbox -------------------------------------------------------------------
install(TARGETS callbackd-sandbox RUNTIME DESTINATION bin COMPONENT sandbox)
install(FILES ${CALLBACKD_GENERATED_DOCS}/callbackd-sandbox.1.gz DESTINATION share/man/man1 COMPONENT sandbox)
install(FILES docs/sandbox.md ${CALLBACKD_PACKAGING_DIR}/copyright ${CALLBACKD_GENERATED_DOCS}/changelog.gz
        DESTINATION share/doc/callbackd-sandbox COMPONENT sandbox)
install(PROGRAMS scripts/sandbox-keys DESTINATION share/doc/callbackd-sandbox/examples COMPONENT sandbox)

# --- CPack ---------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME callbackd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "callbackd maintainers <callbackd@example.com>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL callbackd sandbox)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # callbackd_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/callbackd/callbackd")
set(CPACK_DEBIAN_CALLBACKD_PACKAGE_NAME callbackd)
# The example config names the system CA bundle (wechatpay.ca_file).
set(CPACK_DEBIAN_CALLBACKD_PACKAGE_DEPENDS "ca-certificates")
set(CPACK_DEBIAN_CALLBACKD_PACKAGE_SUGGESTS "postgresql")
set(CPACK_DEBIAN_CALLBACKD_PACKAGE_CONTROL_EXTRA ${CALLBACKD_PACKAGING_DIR}/conffiles)
set(CPACK_DEBIAN_CALLBACKD_DESCRIPTION
    "WeChat Pay notify URL reconciler for service providers\nThe daemon keeps the marketing notify URL (POST /v3/marketing/favor/callbacks)\nof every sub-merchant as PostgreSQL says it should be: desired state in, one\npaced, signed request per change, applied state and an audit trail out.\n.\nThe unit is installed but neither enabled nor started: set up the database\nand the keys first (/usr/share/doc/callbackd/install.md).")
set(CPACK_DEBIAN_SANDBOX_PACKAGE_NAME callbackd-sandbox)
set(CPACK_DEBIAN_SANDBOX_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_SANDBOX_DESCRIPTION
    "local stand-in for WeChat Pay, to rehearse callbackd\nA faithful local WeChat Pay endpoint for the marketing callbacks API over TLS,\nwith throwaway keys, rate windows and scripted faults. For rehearsals and\ntests only: production hosts need only the callbackd package.")
include(CPack)
