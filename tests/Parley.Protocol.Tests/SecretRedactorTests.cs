namespace Parley.Protocol.Tests;

/// <summary><see cref="SecretRedactor"/>: secrets never reach logs.</summary>
public class SecretRedactorTests
{
    private const string Mask = SecretRedactor.Mask;

    private static void AssertRedacted(string input, string expected, params string[] secrets)
    {
        var output = SecretRedactor.Redact(input);
        Assert.Equal(expected, output);
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Token_in_a_url()
    {
        AssertRedacted(
            "GET /socket/websocket?token=s3cr3t.v4lue-x&vsn=2.0.0",
            $"GET /socket/websocket?token={Mask}&vsn=2.0.0",
            "s3cr3t.v4lue-x");
    }

    [Fact]
    public void Token_at_the_end_of_a_url()
    {
        AssertRedacted("wss://chat.example/socket/websocket?vsn=2.0.0&token=abc123", $"wss://chat.example/socket/websocket?vsn=2.0.0&token={Mask}", "abc123");
    }

    [Fact]
    public void Api_key_in_a_query_string()
    {
        AssertRedacted("?api_key=k-998877&page=2", $"?api_key={Mask}&page=2", "k-998877");
        AssertRedacted("apikey=Zz9&x=1", $"apikey={Mask}&x=1", "Zz9");
    }

    [Theory]
    [InlineData("access_token")]
    [InlineData("refresh_token")]
    [InlineData("id_token")]
    [InlineData("client_secret")]
    [InlineData("password")]
    public void Other_secret_names_in_query_strings(string name)
    {
        AssertRedacted($"grant=x&{name}=eyJ.payload.sig&scope=all", $"grant=x&{name}={Mask}&scope=all", "eyJ.payload.sig");
    }

    [Fact]
    public void Secret_names_are_case_insensitive()
    {
        AssertRedacted("TOKEN=abc&Access_Token=def", $"TOKEN={Mask}&Access_Token={Mask}", "abc", "def");
    }

    [Fact]
    public void Json_token_field()
    {
        AssertRedacted("""{"token":"t0k3n","user":"ann"}""", $$"""{"token":"{{Mask}}","user":"ann"}""", "t0k3n");
        AssertRedacted("""{"token": "with \"escaped\" quote", "n": 1}""", $$"""{"token": "{{Mask}}", "n": 1}""", "escaped");
        AssertRedacted("""{"refresh_token":"r1","access_token":"a1"}""", $$"""{"refresh_token":"{{Mask}}","access_token":"{{Mask}}"}""", "r1", "a1");
    }

    [Fact]
    public void Bearer_credential()
    {
        AssertRedacted("calling with Bearer eyJhbGciOi.J9eyJzdWIi.sig_-x now", $"calling with Bearer {Mask} now", "eyJhbGciOi", "sig_-x");
    }

    [Fact]
    public void Authorization_header_with_bearer()
    {
        var output = SecretRedactor.Redact("Authorization: Bearer xyz");

        Assert.DoesNotContain("xyz", output, StringComparison.Ordinal);
        Assert.Contains(Mask, output, StringComparison.Ordinal);
    }

    [Fact]
    public void Authorization_header_with_a_jwt()
    {
        var jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        var output = SecretRedactor.Redact($"request headers: Authorization: Bearer {jwt}; Accept: */*");

        Assert.DoesNotContain(jwt, output, StringComparison.Ordinal);
        Assert.DoesNotContain("c2lnbmF0dXJl", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Authorization_header_with_basic_credentials()
    {
        var output = SecretRedactor.Redact("Authorization: Basic dXNlcjpwYXNz");

        Assert.DoesNotContain("dXNlcjpwYXNz", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_authorization_field()
    {
        AssertRedacted("""{"Authorization": "Bearer abc123"}""", $$"""{"Authorization": "{{Mask}}"}""", "abc123");
    }

    [Fact]
    public void Quoted_values_after_a_secret_name()
    {
        foreach (var line in new[] { "token=\"abc123\"", "token: \"abc123\"", "password = 'abc123'" })
        {
            Assert.DoesNotContain("abc123", SecretRedactor.Redact(line), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Phoenix_bearer_subprotocol_entry()
    {
        AssertRedacted(
            "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.dG9rLTE",
            $"Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.{Mask}",
            "dG9rLTE");
        AssertRedacted("protocols=[phoenix base64url.bearer.phx.c2VjcmV0LXRva2Vu_-+/x]", $"protocols=[phoenix base64url.bearer.phx.{Mask}]", "c2VjcmV0LXRva2Vu");
    }

    [Fact]
    public void Parley_api_keys()
    {
        AssertRedacted("key prl_live_9fK2-xQ used by agent", $"key prl_{Mask} used by agent", "live_9fK2-xQ", "9fK2");
        AssertRedacted("(prl_abc)", $"(prl_{Mask})", "abc");
    }

    [Fact]
    public void Refresh_tokens_and_bare_jwts()
    {
        AssertRedacted("rotated prt_Zx9-_q1 for alice", $"rotated prt_{Mask} for alice", "Zx9-_q1");
        const string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl_-x";
        AssertRedacted($"socket failed with {jwt} at dial", $"socket failed with {Mask} at dial", "eyJzdWIiOiJhbGljZSJ9", "c2lnbmF0dXJl");
        AssertRedacted($"ws://h/socket/websocket?vsn=2.0.0&x={jwt}", $"ws://h/socket/websocket?vsn=2.0.0&x={Mask}", "eyJhbGci");
    }

    [Theory]
    [InlineData("")]
    [InlineData("plain text with no secrets")]
    [InlineData("joined room:lobby as anon-1f-2 (since=40 epoch=e7)")]
    [InlineData("""[null,"1","phoenix","heartbeat",{}]""")]
    [InlineData("tokens are counted per second")]
    [InlineData("the token bucket refilled")]
    public void Text_without_secrets_is_unchanged(string text) => Assert.Equal(text, SecretRedactor.Redact(text));

    [Fact]
    public void Null_becomes_empty() => Assert.Equal("", SecretRedactor.Redact(null));

    [Fact]
    public void Several_secrets_in_one_line()
    {
        var line = """connect url=/socket/websocket?token=T1&vsn=2.0.0 key=prl_K2 protocols=base64url.bearer.phx.QjM body={"token":"J4"} auth=Bearer B5""";
        var output = SecretRedactor.Redact(line);

        foreach (var secret in new[] { "T1", "K2", "QjM", "J4", "B5" })
        {
            Assert.DoesNotContain(secret, output, StringComparison.Ordinal);
        }
        Assert.Contains("vsn=2.0.0", output, StringComparison.Ordinal);
        Assert.True(output.Split(Mask).Length - 1 >= 5, output);
    }

    [Fact]
    public void Redacting_twice_changes_nothing_more()
    {
        var once = SecretRedactor.Redact("token=abc&api_key=def Bearer ghi prl_jkl");
        Assert.Equal(once, SecretRedactor.Redact(once));
    }
}
