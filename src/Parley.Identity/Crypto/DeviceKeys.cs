using System.Globalization;
using System.Text;
using NSec.Cryptography;

namespace Parley.Identity.Crypto;

/// <summary>
/// Ed25519 device keys (NSec over libsodium): what the client signs to log in, and how the hub checks it.
/// </summary>
public static class DeviceKeys
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;

    public const int PublicKeyBytes = 32;
    public const int PrivateKeyBytes = 32;
    public const int SignatureBytes = 64;

    /// <summary>The exact bytes a client signs to log in: purpose, hub, user, nonce and time, one per line.</summary>
    public static byte[] LoginMessage(string hubId, string userName, string nonce, long timestampMs) =>
        Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"parley-login\n{hubId}\n{userName}\n{nonce}\n{timestampMs}"));

    /// <summary>True when <paramref name="publicKey"/> is a well-formed Ed25519 public key.</summary>
    public static bool IsValidPublicKey(ReadOnlySpan<byte> publicKey) =>
        publicKey.Length == PublicKeyBytes && PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out _);

    /// <summary>Verifies a detached signature; false for any malformed input.</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureBytes || !PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
        {
            return false;
        }
        return Algorithm.Verify(key, message, signature);
    }

    /// <summary>A new key pair: (raw private key, raw public key).</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) Generate()
    {
        using var key = Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>The public key of a raw private key.</summary>
    public static byte[] PublicKeyOf(ReadOnlySpan<byte> privateKey)
    {
        using var key = Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>Signs with a raw private key.</summary>
    public static byte[] Sign(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> message)
    {
        using var key = Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey);
        return Algorithm.Sign(key, message);
    }
}
