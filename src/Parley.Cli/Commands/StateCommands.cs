using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley state get|set|list|del|watch</c>: shared key-value state in <c>state:&lt;namespace&gt;</c> topics
/// (docs/cli.md, docs/protocol.md §State). A refused compare-and-set exits 6.
/// </summary>
internal static class StateCommands
{
    private const string StateChangeEvent = "state_change";

    public static Command Create()
    {
        var state = new Command("state", "Shared key-value state by namespace: get, set (with compare-and-set), list, del, watch.");
        state.Subcommands.Add(Get());
        state.Subcommands.Add(Set());
        state.Subcommands.Add(List());
        state.Subcommands.Add(Delete());
        state.Subcommands.Add(Watch());
        return state;
    }

    private static Argument<string> NamespaceArgument() => new("namespace") { Description = "The namespace, e.g. ci (state: is added when missing)." };

    private static Argument<string> KeyArgument() => new("key") { Description = "The key (1-200 of A-Z a-z 0-9 . _ : / -)." };

    private static Option<long?> ExpectVersionOption() =>
        new("--expect-version") { Description = "Only if the key is at this version now (0: only if it does not exist); else exit 6." };

    private static string Topic(string ns) => ns.StartsWith("state:", StringComparison.Ordinal) ? ns : "state:" + ns;

    private static Command Get()
    {
        var command = new Command("get", "Print a key's value (JSON); --json prints the whole entry (version, author, updated_at).");
        var ns = NamespaceArgument();
        var key = KeyArgument();
        command.Arguments.Add(ns);
        command.Arguments.Add(key);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("state get", parse, common, async (client, json) =>
        {
            var entry = await ClientCommands.RequestAsync(client, Topic(parse.GetValue(ns)!), "get", new { key = parse.GetValue(key) }, ct);
            Console.WriteLine(json ? entry.GetRawText() : entry.GetProperty("value").GetRawText());
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Set()
    {
        var command = new Command("set", "Set a key. VALUE is JSON (text that is not JSON is stored as a string); - reads standard input.");
        var ns = NamespaceArgument();
        var key = KeyArgument();
        var value = new Argument<string>("value") { Description = "The value: JSON such as 42, true, {\"a\":1} or \"text\"; other text is stored as a string; - reads stdin." };
        var expect = ExpectVersionOption();
        command.Arguments.Add(ns);
        command.Arguments.Add(key);
        command.Arguments.Add(value);
        command.Options.Add(expect);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("state set", parse, common, async (client, json) =>
        {
            var text = parse.GetValue(value)!;
            if (text == "-")
            {
                text = Console.In.ReadToEnd().TrimEnd('\n');
            }
            var topic = Topic(parse.GetValue(ns)!);
            var written = await ClientCommands.RequestAsync(client, topic, "set", new { key = parse.GetValue(key), value = ParseValue(text), expected_version = parse.GetValue(expect) }, ct);
            Console.WriteLine(json ? written.GetRawText()
                : $"{topic} {written.GetProperty("key").GetString()} is at version {written.GetProperty("version").GetInt64()} (revision {written.GetProperty("revision").GetInt64()})");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command List()
    {
        var command = new Command("list", "List a namespace's keys and values.");
        var ns = NamespaceArgument();
        var prefix = new Option<string?>("--prefix") { Description = "Only keys that start with this." };
        command.Arguments.Add(ns);
        command.Options.Add(prefix);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("state list", parse, common, async (client, json) =>
        {
            var listed = await ClientCommands.RequestAsync(client, Topic(parse.GetValue(ns)!), "list", new { prefix = parse.GetValue(prefix) }, ct);
            if (json)
            {
                Console.WriteLine(listed.GetRawText());
                return ExitCodes.Ok;
            }
            var entries = listed.GetProperty("entries");
            if (entries.GetArrayLength() == 0)
            {
                Console.WriteLine("(no keys)");
            }
            foreach (var entry in entries.EnumerateArray())
            {
                Console.WriteLine(EntryLine(entry));
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Delete()
    {
        var command = new Command("del", "Delete a key.");
        var ns = NamespaceArgument();
        var key = KeyArgument();
        var expect = ExpectVersionOption();
        command.Arguments.Add(ns);
        command.Arguments.Add(key);
        command.Options.Add(expect);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("state del", parse, common, async (client, json) =>
        {
            var topic = Topic(parse.GetValue(ns)!);
            var deleted = await ClientCommands.RequestAsync(client, topic, "delete", new { key = parse.GetValue(key), expected_version = parse.GetValue(expect) }, ct);
            Console.WriteLine(json ? deleted.GetRawText() : $"deleted {topic} {deleted.GetProperty("key").GetString()} (revision {deleted.GetProperty("revision").GetInt64()})");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Watch()
    {
        var command = new Command("watch", "Print a namespace's keys, then every change until Ctrl-C; after a reconnect it prints the namespace again. Status goes to stderr.");
        var ns = NamespaceArgument();
        command.Arguments.Add(ns);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("state watch", parse, common, async (client, json) =>
        {
            var topic = Topic(parse.GetValue(ns)!);
            return await ClientCommands.FollowAsync(client, "state watch", topic, since: null, null, StateChangeEvent,
                joined => PrintSnapshot(joined.Response, json), change => PrintChange(change, json),
                ReprintOnRejoin("namespace", snapshot => PrintSnapshot(snapshot, json)), ct);
        }));
        return command;
    }

    // A rejoin gets no replay of changes: its reply is the fresh snapshot, printed so the watcher's view is whole.
    private static async Task ResyncAsync(Rejoined rejoined, string noun, Action<JsonElement> print)
    {
        if (rejoined.Reply.ValueKind == JsonValueKind.Object && rejoined.Reply.TryGetProperty("revision", out var revision))
        {
            await Console.Error.WriteLineAsync($"parley: rejoined {rejoined.Topic}; the {noun} as of revision {revision.GetInt64()}:");
            print(rejoined.Reply);
        }
    }

    /// <summary>The rejoin hook of a snapshot watcher: prints the rejoin reply's snapshot with <paramref name="print"/>.</summary>
    internal static Func<Rejoined, CancellationToken, Task> ReprintOnRejoin(string noun, Action<JsonElement> print) =>
        (rejoined, _) => ResyncAsync(rejoined, noun, print);

    private static void PrintSnapshot(JsonElement snapshot, bool json)
    {
        if (json)
        {
            ClientCommands.PrintTypedLine(snapshot, "snapshot");
            return;
        }
        foreach (var entry in snapshot.GetProperty("entries").EnumerateArray())
        {
            Console.WriteLine(EntryLine(entry));
        }
    }

    private static void PrintChange(JsonElement change, bool json)
    {
        if (json)
        {
            ClientCommands.PrintTypedLine(change, "change");
        }
        else if (change.GetProperty("op").GetString() == "delete")
        {
            Console.WriteLine($"[{change.GetProperty("revision").GetInt64()}] {change.GetProperty("key").GetString()} deleted by {change.GetProperty("author").GetString()}");
        }
        else
        {
            Console.WriteLine($"[{change.GetProperty("revision").GetInt64()}] {EntryLine(change)}");
        }
    }

    private static string EntryLine(JsonElement entry) =>
        $"{entry.GetProperty("key").GetString()} = {entry.GetProperty("value").GetRawText()}  (v{entry.GetProperty("version").GetInt64()} by {entry.GetProperty("author").GetString()})";

    // JSON when it parses; anything else is the text itself, as a JSON string.
    private static JsonNode? ParseValue(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
        }
    }
}
