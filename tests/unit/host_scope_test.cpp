// host_scope: what a host's text says about where it is (core/host_scope.h), table-driven.
#include <catch2/catch.hpp>

#include "core/host_scope.h"

using namespace callbackd;

TEST_CASE("host_scope: loopback, private and anywhere, as the resolver would read each form", "[host_scope]") {
  const struct {
    const char* host;
    HostScope scope;
  } rows[] = {
      {"127.0.0.1", HostScope::loopback},
      {"127.255.255.254", HostScope::loopback},
      {"127.1", HostScope::loopback},       // inet_aton's short form, which getaddrinfo accepts
      {"0x7f.0.0.1", HostScope::loopback},  // and its hex form
      {"2130706433", HostScope::loopback},  // and a single number
      {"0.0.0.0", HostScope::loopback},     // Linux connects 0.0.0.0 to this host
      {"::1", HostScope::loopback},
      {"::", HostScope::loopback},
      {"0:0:0:0:0:0:0:1", HostScope::loopback},
      {"::ffff:127.0.0.1", HostScope::loopback},
      {"localhost", HostScope::loopback},
      {"LocalHost.", HostScope::loopback},
      {"sandbox.localhost", HostScope::loopback},
      {"10.0.0.1", HostScope::private_network},
      {"172.16.0.1", HostScope::private_network},
      {"172.31.255.255", HostScope::private_network},
      {"192.168.1.1", HostScope::private_network},
      {"100.64.0.1", HostScope::private_network},
      {"169.254.169.254", HostScope::private_network},
      {"fd00::1", HostScope::private_network},
      {"fc00::1", HostScope::private_network},
      {"fe80::1", HostScope::private_network},
      {"fe80::1%eth0", HostScope::private_network},
      {"::ffff:10.1.2.3", HostScope::private_network},
      {"sandbox.local", HostScope::private_network},
      {"gw.home.arpa", HostScope::private_network},
      {"wxpay.internal", HostScope::private_network},
      // Not private: the neighbours of each range, public addresses, names DNS places.
      {"172.15.255.255", HostScope::anywhere},
      {"172.32.0.0", HostScope::anywhere},
      {"192.169.0.1", HostScope::anywhere},
      {"11.0.0.1", HostScope::anywhere},
      {"128.0.0.1", HostScope::anywhere},
      {"100.128.0.1", HostScope::anywhere},
      {"fe00::1", HostScope::anywhere},
      {"2001:db8::1", HostScope::anywhere},
      {"::ffff:8.8.8.8", HostScope::anywhere},
      {"api.mch.weixin.qq.com", HostScope::anywhere},
      {"notlocalhost", HostScope::anywhere},
      {"localhost.example.com", HostScope::anywhere},
      {"notlocal", HostScope::anywhere},
      {"local.example.com", HostScope::anywhere},
      {"", HostScope::anywhere},
  };
  for (const auto& row : rows) {
    CAPTURE(row.host);
    CHECK(host_scope(row.host) == row.scope);
  }
}

TEST_CASE("WeChat Pay's production hosts, whatever their case", "[host_scope]") {
  CHECK(is_wechatpay_production_host("api.mch.weixin.qq.com"));
  CHECK(is_wechatpay_production_host("API.MCH.WEIXIN.QQ.COM."));
  CHECK(is_wechatpay_production_host("api2.wechatpay.cn"));
  CHECK(is_wechatpay_production_host("api2.mch.weixin.qq.com"));
  CHECK_FALSE(is_wechatpay_production_host("127.0.0.1"));
  CHECK_FALSE(is_wechatpay_production_host("api.mch.weixin.qq.com.evil.example"));
  CHECK_FALSE(is_wechatpay_production_host("wechatpay.cn"));
}
