using System.Text.Json;
using System.Text.Json.Nodes;

namespace Parley.Cli;

/// <summary>A named hub to talk to: its URL, the user whose device key logs in, and where that key is (null: the default place).</summary>
internal sealed record Profile(string Name, string Server, string? User, string? KeyFile = null);

/// <summary>
/// Named profiles in <c>$XDG_CONFIG_HOME/parley/profiles.json</c> (mode 0600): <c>{"current": name,
/// "profiles": {name: {"server": url, "user": name, "key_file": path}}}</c>. Flags and environment variables override the
/// current profile. Profiles hold no secrets: credentials come from device keys or PARLEY_TOKEN.
/// </summary>
internal static class Profiles
{
    public static string FilePath => Path.Combine(ConfigPaths.Root(), "profiles.json");

    public static (string? Current, List<Profile> All) Load()
    {
        if (!File.Exists(FilePath))
        {
            return (null, []);
        }
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(FilePath)) as JsonObject ?? throw new InvalidDataException("not a JSON object");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{FilePath} is not valid JSON ({ex.Message}): fix or delete it");
        }
        var all = new List<Profile>();
        if (root["profiles"] is JsonObject profiles)
        {
            foreach (var (name, value) in profiles)
            {
                if (value?["server"]?.GetValue<string>() is { } server)
                {
                    all.Add(new Profile(name, server, value["user"]?.GetValue<string>(), value["key_file"]?.GetValue<string>()));
                }
            }
        }
        return (root["current"]?.GetValue<string>(), all);
    }

    private static Profile? _selected;

    /// <summary>The profile this invocation uses: the one <c>--profile</c> selected, else the current one.</summary>
    public static Profile? Current()
    {
        if (Volatile.Read(ref _selected) is { } selected)
        {
            return selected;
        }
        var (current, all) = Load();
        return all.Find(p => p.Name == current);
    }

    /// <summary>
    /// Makes <paramref name="name"/> this process's profile (<c>--profile</c>), so that everything that reads the
    /// current profile — the server, the user, the device key's path — reads this one. Throws when there is none.
    /// </summary>
    public static Profile Select(string name)
    {
        var profile = Load().All.Find(p => p.Name == name) ?? throw new Commands.IdentityCommands.UsageException($"no profile '{name}' (parley profile list)");
        Volatile.Write(ref _selected, profile);
        return profile;
    }

    public static void Save(string? current, IEnumerable<Profile> all)
    {
        var profiles = new JsonObject();
        foreach (var profile in all)
        {
            profiles[profile.Name] = new JsonObject { ["server"] = profile.Server, ["user"] = profile.User, ["key_file"] = profile.KeyFile };
        }
        var root = new JsonObject { ["current"] = current, ["profiles"] = profiles };
        using var file = ConfigPaths.CreatePrivateFile(FilePath);
        using var writer = new Utf8JsonWriter(file, new JsonWriterOptions { Indented = true });
        root.WriteTo(writer);
    }
}
