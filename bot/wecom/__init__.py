"""WeCom (企业微信) smart-robot long-connection protocol: frames, the client connection,
file crypto, and a local emulator of WeCom's server for tests. No telegram, no SQL."""
