using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Parley.Identity.Crypto;

/// <summary>Random secrets, their stored hashes, and constant-time comparison.</summary>
public static class Secrets
{
    /// <summary>Prefix of API keys (so secret scanners and people recognise them).</summary>
    public const string ApiKeyPrefix = "prl_";

    /// <summary>Prefix of refresh tokens.</summary>
    public const string RefreshTokenPrefix = "prt_";

    /// <summary>A new secret: <paramref name="prefix"/> + base64url of 32 random bytes.</summary>
    public static string New(string prefix) => prefix + RandomBase64Url(32);

    /// <summary>base64url (no padding) of <paramref name="bytes"/> random bytes.</summary>
    public static string RandomBase64Url(int bytes) => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(bytes));

    /// <summary>A short random id for records (not secret): 12 random bytes, base64url.</summary>
    public static string NewId() => RandomBase64Url(12);

    /// <summary>
    /// The stored form of a secret: lowercase hex SHA-256. The secrets are 32 random bytes, so a fast
    /// hash is enough (nothing to brute-force); it keeps a stolen database from yielding usable keys.
    /// </summary>
    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Compares two strings in time independent of where they differ.</summary>
    public static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));
}
