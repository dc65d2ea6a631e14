using System.Text.RegularExpressions;

namespace Parley.Protocol;

/// <summary>
/// The one redaction function for logs, errors and metrics: scrubs <c>token=…</c>, <c>api_key=…</c>
/// and similar query or form values, <c>"token": "…"</c> JSON fields, <c>Bearer …</c> credentials,
/// Phoenix bearer subprotocol entries (<c>base64url.bearer.phx.…</c>), <c>prl_…</c> API keys,
/// <c>prt_…</c> refresh tokens and bare JWTs (<c>eyJ….eyJ….…</c>).
/// </summary>
public static partial class SecretRedactor
{
    /// <summary>What replaces a secret.</summary>
    public const string Mask = "[REDACTED]";

    /// <summary>Returns <paramref name="text"/> with every secret replaced by <see cref="Mask"/>.</summary>
    public static string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text ?? "";
        }
        var result = QueryValue().Replace(text, static m => m.Groups[1].Value + m.Groups[2].Value + m.Groups[3].Value + Mask + m.Groups[3].Value);
        result = JsonValue().Replace(result, static m => m.Groups[1].Value + Mask + "\"");
        result = Bearer().Replace(result, "$1 " + Mask);
        result = PhoenixBearer().Replace(result, "base64url.bearer.phx." + Mask);
        result = ApiKey().Replace(result, "$1_" + Mask);
        result = Jwt().Replace(result, Mask);
        return result;
    }

    private const string SecretNames = "access_token|refresh_token|id_token|token|api_key|apikey|api-key|password|passwd|secret|client_secret|signature|authorization";

    // name=value, name: value, name="value", Authorization: Bearer value — the whole credential goes.
    [GeneratedRegex(@"(?i)\b(" + SecretNames + @")(\s*[=:]\s*)([""']?)(?![\[{])(?:(?:Bearer|Basic|Token)\s+)?[^\s&""',;}\]]+(?:\3)?")]
    private static partial Regex QueryValue();

    [GeneratedRegex(@"(?i)(""(?:" + SecretNames + @")""\s*:\s*"")(?:[^""\\]|\\.)*""")]
    private static partial Regex JsonValue();

    [GeneratedRegex(@"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+")]
    private static partial Regex Bearer();

    [GeneratedRegex(@"base64url\.bearer\.phx\.[A-Za-z0-9+/_=-]+")]
    private static partial Regex PhoenixBearer();

    [GeneratedRegex(@"\b(prl|prt)_[A-Za-z0-9_-]+")]
    private static partial Regex ApiKey();

    // A JWT anywhere (its header always starts with {" → eyJ): three base64url parts.
    [GeneratedRegex(@"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")]
    private static partial Regex Jwt();
}
