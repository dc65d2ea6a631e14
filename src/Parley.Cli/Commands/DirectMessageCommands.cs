using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Parley.Client;

namespace Parley.Cli.Commands;

/// <summary>
/// Direct messages (docs/cli.md, docs/protocol.md §14): <c>parley whisper</c>, <c>parley inbox</c>,
/// <c>parley ack</c>, and <c>parley status ID</c> for where a sent message is.
/// </summary>
internal static class DirectMessageCommands
{
    private const string Lobby = "hub:lobby";

    // A fetch parks on the hub for at most this long, well inside the client's reply timeout.
    private const int FetchWaitMs = 10_000;

    public static Command Whisper()
    {
        var command = new Command("whisper", "Send a direct message to users or @groups; it is stored for each recipient before this returns.");
        var to = new Argument<string>("to") { Description = "Who: bob, @team (its sub-groups too), or several joined by commas: bob,@reviewers." };
        var text = new Argument<string>("text") { Description = "The message, or - to read standard input." };
        var priority = new Option<string?>("--priority") { Description = "now (reaches busy people too), next (default) or low." };
        command.Arguments.Add(to);
        command.Arguments.Add(text);
        command.Options.Add(priority);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("whisper", parse, common, async (client, json) =>
        {
            var body = parse.GetValue(text)!;
            if (body == "-")
            {
                body = Console.In.ReadToEnd().TrimEnd('\n');
            }
            var sent = await LobbyRequestAsync(client, "dm", new { to = parse.GetValue(to), body, priority = parse.GetValue(priority) }, ct);
            Console.WriteLine(json ? sent.GetRawText()
                : $"sent {sent.GetProperty("id").GetString()} to {string.Join(", ", sent.GetProperty("recipients").EnumerateArray().Select(r => r.GetString()))}");
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command Inbox()
    {
        var command = new Command("inbox", "Print your unread direct messages, oldest first (they become delivered); --wait blocks until one arrives.");
        var wait = new Option<bool>("--wait") { Description = "If there is nothing unread, wait until something arrives (Ctrl-C to stop)." };
        var ack = new Option<bool>("--ack") { Description = "Mark what is printed as read." };
        var limit = new Option<int?>("--limit") { Description = "At most this many (default 50, up to 500)." };
        command.Options.Add(wait);
        command.Options.Add(ack);
        var hook = new Option<bool>("--hook") { Description = "For a coding tool's prompt hook: one line saying what is unread (nothing when nothing is), within 5 s, always exit 0." };
        command.Options.Add(limit);
        command.Options.Add(hook);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => parse.GetValue(hook) ? HookAsync(parse, common, ct) : ClientCommands.RunClientAsync("inbox", parse, common, async (client, json) =>
        {
            var topic = await JoinInboxAsync(client, parse, common, ct);
            JsonElement messages;
            do
            {
                var fetched = await ClientCommands.RequestAsync(client, topic, "inbox", new { limit = parse.GetValue(limit), wait_ms = parse.GetValue(wait) ? FetchWaitMs : 0 }, ct, join: false);
                messages = fetched.GetProperty("messages");
            }
            while (parse.GetValue(wait) && messages.GetArrayLength() == 0 && !ct.IsCancellationRequested);
            foreach (var message in messages.EnumerateArray())
            {
                Console.WriteLine(json ? message.GetRawText() : Line(message));
            }
            if (!json && messages.GetArrayLength() == 0)
            {
                Console.WriteLine("(no unread messages)");
            }
            if (parse.GetValue(ack) && messages.GetArrayLength() > 0)
            {
                await ClientCommands.RequestAsync(client, topic, "ack", new { ids = messages.EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToArray() }, ct, join: false);
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    // The hook runs on every prompt: it must be quick and must never fail the prompt.
    private static readonly TimeSpan HookBound = TimeSpan.FromSeconds(5);

    /// <summary>
    /// <c>parley inbox --hook</c>: "parley: 3 unread messages (2 from alice, 1 from @team/backend) — call the
    /// inbox tool", or nothing when nothing is unread or the hub cannot be asked in time. Exit 0 always.
    /// </summary>
    private static async Task<int> HookAsync(ParseResult parse, ClientCommands.Common common, CancellationToken ct)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(HookBound);
        try
        {
            var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
            await using var client = new ParleyClient(new ParleyClientOptions
            {
                Server = server,
                Credentials = credentials,
                ClientKind = "cli",
                ConnectTimeout = TimeSpan.FromSeconds(2),
                ReplyTimeout = TimeSpan.FromSeconds(3),
            });
            await client.StartAsync(bound.Token);
            var topic = await JoinInboxAsync(client, parse, common, bound.Token);
            var fetched = await ClientCommands.RequestAsync(client, topic, "inbox", new { limit = 500 }, bound.Token, join: false);
            var messages = fetched.GetProperty("messages").EnumerateArray().ToList();
            if (messages.Count > 0)
            {
                Console.WriteLine(HookLine(messages, parse.GetValue(common.Json)));
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            await Console.Error.WriteLineAsync($"parley inbox --hook: {Parley.Protocol.SecretRedactor.Redact(ex.Message)}");
        }
        return ExitCodes.Ok;
    }

    /// <summary>One line for the hook: the count, then who from (a message sent to a group counts under the group), most first.</summary>
    internal static string HookLine(IReadOnlyList<JsonElement> messages, bool json)
    {
        var bySource = messages
            .GroupBy(m => m.GetProperty("to").GetString() is { } to && to.StartsWith('@') && !to.Contains(',', StringComparison.Ordinal) ? to : m.GetProperty("from").GetString()!)
            .Select(g => (Source: g.Key, Count: g.Count()))
            .OrderByDescending(g => g.Count).ThenBy(g => g.Source, StringComparer.Ordinal)
            .ToList();
        if (json)
        {
            return new System.Text.Json.Nodes.JsonObject
            {
                ["unread"] = messages.Count,
                ["from"] = new System.Text.Json.Nodes.JsonObject(bySource.Select(s => KeyValuePair.Create(s.Source, (System.Text.Json.Nodes.JsonNode?)s.Count))),
            }.ToJsonString();
        }
        var shown = string.Join(", ", bySource.Take(5).Select(s => $"{s.Count} from {s.Source}")) + (bySource.Count > 5 ? ", …" : "");
        return $"parley: {messages.Count} unread message{(messages.Count == 1 ? "" : "s")} ({shown}) — call the inbox tool";
    }

    public static Command Ack()
    {
        var command = new Command("ack", "Mark direct messages read.");
        var ids = new Argument<string[]>("id") { Description = "Message ids (dm-…).", Arity = ArgumentArity.OneOrMore };
        command.Arguments.Add(ids);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("ack", parse, common, async (client, json) =>
        {
            var topic = await JoinInboxAsync(client, parse, common, ct);
            var read = await ClientCommands.RequestAsync(client, topic, "ack", new { ids = parse.GetValue(ids) }, ct, join: false);
            Console.WriteLine(json ? read.GetRawText() : $"{read.GetProperty("read").GetInt32()} marked read");
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary><c>parley status ID</c>: the sent message's state for each recipient.</summary>
    public static Task<int> MessageStatusAsync(ParseResult parse, ClientCommands.Common common, string id, CancellationToken ct) =>
        ClientCommands.RunClientAsync("status", parse, common, async (client, json) =>
        {
            var status = await LobbyRequestAsync(client, "message_status", new { id }, ct);
            if (json)
            {
                Console.WriteLine(status.GetRawText());
                return ExitCodes.Ok;
            }
            Console.WriteLine($"{status.GetProperty("id").GetString()} to {status.GetProperty("to").GetString()} ({status.GetProperty("priority").GetString()})");
            foreach (var recipient in status.GetProperty("recipients").EnumerateArray())
            {
                Console.WriteLine($"  {recipient.GetProperty("name").GetString(),-24} {recipient.GetProperty("state").GetString(),-10} {Time(recipient.GetProperty("at").GetInt64())}");
            }
            return ExitCodes.Ok;
        });

    // The lobby is joined by the client itself (it has a credential); a push there needs no join of ours.
    private static Task<JsonElement> LobbyRequestAsync(ParleyClient client, string @event, object payload, CancellationToken ct) =>
        ClientCommands.RequestAsync(client, Lobby, @event, payload, ct, join: false);

    // user:<me>: the name from --name, else from the hub (the credential may be a token or key).
    private static async Task<string> JoinInboxAsync(ParleyClient client, ParseResult parse, ClientCommands.Common common, CancellationToken ct)
    {
        var (server, credentials, _, name) = ClientCommands.Resolve(parse, common);
        if (name is null)
        {
            var token = credentials is null ? null : await credentials(new CredentialRequest(false), ct);
            name = (await IdentityCommands.GetAsync(server, "/api/whoami", token, ct))["name"]!.GetValue<string>();
        }
        var topic = "user:" + name;
        await ClientCommands.JoinOrThrowAsync(client, topic, since: null, null, ct);
        return topic;
    }

    private static string Line(JsonElement message) =>
        $"{message.GetProperty("id").GetString()}  {Time(message.GetProperty("sent_at").GetInt64())}  [{message.GetProperty("priority").GetString()}] " +
        $"{message.GetProperty("from").GetString()}{(message.GetProperty("to").GetString() is { } to && to.Contains('@', StringComparison.Ordinal) ? " to " + to : "")}: {message.GetProperty("body").GetString()}";

    private static string Time(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
}
