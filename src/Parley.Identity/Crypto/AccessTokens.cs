using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Parley.Identity.Crypto;

/// <summary>The claims Parley puts in an access token.</summary>
/// <param name="Subject">The user name.</param>
/// <param name="Role">The user's role when the token was issued.</param>
/// <param name="IssuedAt">Unix seconds.</param>
/// <param name="ExpiresAt">Unix seconds.</param>
/// <param name="TokenId">Unique per token (<c>jti</c>).</param>
public sealed record AccessTokenClaims(string Subject, HubRole Role, long IssuedAt, long ExpiresAt, string TokenId);

/// <summary>
/// Access tokens: compact JWTs signed with HMAC-SHA256 under a hub key named by <c>kid</c>, so keys
/// can rotate while older tokens stay valid until they expire. Validation is strict: exactly the
/// header Parley writes (<c>alg</c> HS256, a known <c>kid</c>), the hub's own issuer, a valid subject
/// and role, and an unexpired <c>exp</c>. Only the hub issues and checks them.
/// </summary>
public static class AccessTokens
{
    private const string Algorithm = "HS256";

    public static string Issue(SigningKeyRecord key, string issuer, AccessTokenClaims claims)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(claims);
        var header = Json(w =>
        {
            w.WriteString("alg", Algorithm);
            w.WriteString("typ", "JWT");
            w.WriteString("kid", key.Kid);
        });
        var payload = Json(w =>
        {
            w.WriteString("iss", issuer);
            w.WriteString("sub", claims.Subject);
            w.WriteString("role", HubRoles.Name(claims.Role));
            w.WriteNumber("iat", claims.IssuedAt);
            w.WriteNumber("exp", claims.ExpiresAt);
            w.WriteString("jti", claims.TokenId);
        });
        var signingInput = Base64Url.EncodeToString(header) + "." + Base64Url.EncodeToString(payload);
        var signature = HMACSHA256.HashData(key.Secret, Encoding.ASCII.GetBytes(signingInput));
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }

    /// <summary>True when <paramref name="token"/> has the shape of a JWT (three dot-separated parts).</summary>
    public static bool LooksLikeJwt(string token) => token.Count(static c => c == '.') == 2;

    /// <summary>Validates a token; on failure <paramref name="error"/> says why (<c>expired</c> or <c>invalid</c>).</summary>
    public static bool TryValidate(string token, IReadOnlyList<SigningKeyRecord> keys, string issuer, long nowSeconds, out AccessTokenClaims? claims, out string error)
    {
        claims = null;
        error = "invalid";
        if (token.Length > 4096)
        {
            return false;
        }
        var parts = token.Split('.');
        if (parts.Length != 3 || !TryDecode(parts[0], out var headerBytes) || !TryDecode(parts[1], out var payloadBytes) || !TryDecode(parts[2], out var signature))
        {
            return false;
        }
        string? kid;
        try
        {
            using var header = JsonDocument.Parse(headerBytes);
            if (header.RootElement.ValueKind != JsonValueKind.Object
                || !header.RootElement.TryGetProperty("alg", out var alg) || alg.ValueKind != JsonValueKind.String || alg.GetString() != Algorithm
                || !header.RootElement.TryGetProperty("kid", out var kidElement) || kidElement.ValueKind != JsonValueKind.String)
            {
                return false;
            }
            kid = kidElement.GetString();
        }
        catch (JsonException)
        {
            return false;
        }
        var key = keys.FirstOrDefault(k => k.Kid == kid);
        if (key is null)
        {
            return false;
        }
        var expected = HMACSHA256.HashData(key.Secret, Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]));
        if (!CryptographicOperations.FixedTimeEquals(expected, signature))
        {
            return false;
        }
        try
        {
            using var payload = JsonDocument.Parse(payloadBytes);
            var root = payload.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !TryString(root, "iss", out var iss) || iss != issuer
                || !TryString(root, "sub", out var sub) || !Names.IsValid(sub)
                || !TryString(root, "role", out var roleName) || !HubRoles.TryParse(roleName, out var role)
                || !TryString(root, "jti", out var jti)
                || !root.TryGetProperty("iat", out var iat) || !iat.TryGetInt64(out var issuedAt)
                || !root.TryGetProperty("exp", out var exp) || !exp.TryGetInt64(out var expiresAt))
            {
                return false;
            }
            if (expiresAt <= nowSeconds)
            {
                error = "expired";
                return false;
            }
            claims = new AccessTokenClaims(sub!, role, issuedAt, expiresAt, jti!);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool TryString(JsonElement root, string name, out string? value)
    {
        value = root.TryGetProperty(name, out var element) && element.ValueKind == JsonValueKind.String ? element.GetString() : null;
        return value is not null;
    }

    private static bool TryDecode(string part, out byte[] bytes)
    {
        bytes = [];
        if (part.Length == 0 || !Base64Url.IsValid(part))
        {
            return false;
        }
        bytes = Base64Url.DecodeFromChars(part);
        return true;
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }
        return stream.ToArray();
    }
}
