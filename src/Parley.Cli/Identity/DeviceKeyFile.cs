using System.Buffers.Text;
using Parley.Identity.Crypto;

namespace Parley.Cli.Identity;

/// <summary>
/// This machine's Ed25519 device key for one user name: <c>$XDG_CONFIG_HOME/parley/keys/&lt;name&gt;.key</c>
/// (else <c>~/.config/parley/keys</c>), one line of base64url private key, mode 0600 in a 0700
/// directory. A key file that others can read is refused, not used.
/// </summary>
internal static class DeviceKeyFile
{
    public static string Directory() => Path.Combine(ConfigPaths.Root(), "keys");

    /// <summary>The key file for <paramref name="name"/>: the current profile's <c>key_file</c> when the profile is for that user, else <c>keys/NAME.key</c>.</summary>
    public static string PathFor(string name) =>
        Profiles.Current() is { User: { } user, KeyFile: { } keyFile } && user == name ? keyFile : Path.Combine(Directory(), name + ".key");

    /// <summary>Loads the key for <paramref name="name"/>, creating it when missing. Returns (private key, public key, path, created).</summary>
    public static (byte[] PrivateKey, byte[] PublicKey, string Path, bool Created) LoadOrCreate(string name)
    {
        var path = PathFor(name);
        if (File.Exists(path))
        {
            var existing = Load(path);
            return (existing, DeviceKeys.PublicKeyOf(existing), path, false);
        }
        var (privateKey, publicKey) = DeviceKeys.Generate();
        using (var file = ConfigPaths.CreatePrivateFile(path, FileMode.CreateNew))
        using (var writer = new StreamWriter(file))
        {
            writer.WriteLine(Base64Url.EncodeToString(privateKey));
        }
        return (privateKey, publicKey, path, true);
    }

    /// <summary>Loads an existing key, refusing one that group or others can read.</summary>
    public static byte[] Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no device key at {path}: register first (parley register)");
        }
        if (ConfigPaths.ExposureOf(path) is { } exposure)
        {
            throw new UnauthorizedAccessException($"refusing to use the device key: {exposure}");
        }
        var text = File.ReadAllText(path).Trim();
        if (!Base64Url.IsValid(text) || Base64Url.DecodeFromChars(text) is not { Length: DeviceKeys.PrivateKeyBytes } key)
        {
            throw new InvalidDataException($"{path} is not a Parley device key (one line of base64url, 32 bytes)");
        }
        return key;
    }
}
