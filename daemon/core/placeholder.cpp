// Replaced as soon as the core has a real translation unit.
namespace callbackd { void core_placeholder() {} }
