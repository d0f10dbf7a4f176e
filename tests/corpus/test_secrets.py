from firmlm.corpus.secrets import scrub


def test_credentials_keys_emails_and_ips_become_typed_placeholders():
    text = ('const char *gh = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";\n'
            '#define MQTT_PASSWORD "mqtt-pass-1234"\n'
            "/* contact: dev@vendor.example.org, server 203.0.113.9 */\n")
    out, counts = scrub(text)
    assert "ghp_" not in out and "mqtt-pass-1234" not in out and "dev@vendor" not in out and "203.0.113.9" not in out
    assert '"<GITHUB_TOKEN>"' in out and "<EMAIL>" in out and "<IP_ADDRESS>" in out
    assert counts["GitHub Token"] == 1 and counts["Secret Keyword"] == 1


def test_firmware_code_is_left_alone():
    text = ("#define GPIOA_BASE (0x40020000UL)\nstatic const uint8_t aes_key[16] = { 0x2b, 0x7e, 0x15, 0x16 };\n"
            "uint32_t key_len = 16; /* v1.2.3, loopback 127.0.0.1 */\nint token_count(void);\n")
    out, counts = scrub(text)
    assert out == text and not counts
