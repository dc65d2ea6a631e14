using System.Text.Json;
using System.Text.Json.Nodes;

namespace Parley.Cli.Mcp;

/// <summary>
/// What an agent keeps between sessions, per user and hub: the channels it joined and follows, and for each
/// the offset up to which every message was handled (nothing after it unacked is ever skipped), plus the
/// offsets acked above it. <c>$XDG_CONFIG_HOME/parley/agent/USER@HOST_PORT.json</c>, mode 0600. Direct
/// messages need none of this: the hub's inbox is durable.
/// </summary>
internal sealed class AgentBook
{
    private readonly string? _path;
    private readonly Lock _lock = new();

    public SortedSet<string> Joined { get; } = new(StringComparer.Ordinal);
    public SortedSet<string> Followed { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, long> Cursors { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, SortedSet<long>> Acked { get; } = new(StringComparer.Ordinal);

    private AgentBook(string? path) => _path = path;

    /// <summary>
    /// The book of <paramref name="user"/> on <paramref name="server"/>; with a key file (one per project, as
    /// <c>parley agent setup</c> makes them), one book per key file, so two projects' agents never share one.
    /// </summary>
    public static string PathFor(Uri server, string user, string? keyFile = null) =>
        Path.Combine(ConfigPaths.Root(), "agent", keyFile is null ? $"{user}@{server.Host}_{server.Port}.json" : Path.GetFileNameWithoutExtension(keyFile) + ".json");

    /// <summary>Loads the book at <paramref name="path"/> (a missing file is an empty book; null keeps it in memory only).</summary>
    public static AgentBook Load(string? path)
    {
        var book = new AgentBook(path);
        if (path is null || !File.Exists(path))
        {
            return book;
        }
        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is not JsonObject root)
            {
                return book;
            }
            foreach (var t in root["joined"]?.AsArray() ?? [])
            {
                book.Joined.Add(t!.GetValue<string>());
            }
            foreach (var t in root["followed"]?.AsArray() ?? [])
            {
                book.Followed.Add(t!.GetValue<string>());
            }
            foreach (var (topic, offset) in root["cursors"]?.AsObject() ?? [])
            {
                book.Cursors[topic] = offset!.GetValue<long>();
            }
            foreach (var (topic, offsets) in root["acked"]?.AsObject() ?? [])
            {
                book.Acked[topic] = new SortedSet<long>(offsets!.AsArray().Select(o => o!.GetValue<long>()));
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            Console.Error.WriteLine($"parley mcp: {path} is not readable ({ex.Message}); starting with no followed channels");
        }
        return book;
    }

    public void Save()
    {
        if (_path is null)
        {
            return;
        }
        lock (_lock)
        {
            var root = new JsonObject
            {
                ["joined"] = new JsonArray(Joined.Select(t => (JsonNode)t).ToArray()),
                ["followed"] = new JsonArray(Followed.Select(t => (JsonNode)t).ToArray()),
                ["cursors"] = new JsonObject(Cursors.Select(c => KeyValuePair.Create(c.Key, (JsonNode?)c.Value))),
                ["acked"] = new JsonObject(Acked.Where(a => a.Value.Count > 0).Select(a => KeyValuePair.Create(a.Key, (JsonNode?)new JsonArray(a.Value.Select(o => (JsonNode)o).ToArray())))),
            };
            ConfigPaths.WritePrivateFileAtomically(_path, root.ToJsonString());
        }
    }
}
