using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley fleet watch</c>: the fleet live in the terminal (docs/cli.md): a table of every instance
/// (name, status, pid, uptime, restarts, last log line) redrawn from <c>fleet:instances</c> and the
/// instances' <c>logs:</c> tails, with the recent changes under it. An instance that changes status more
/// than <see cref="BurstChanges"/> times in <see cref="BurstWindow"/> gets one summary row instead of a
/// flood. It reconnects with backoff (1, 2, 4, 8, 16, 30 s, with jitter) and says so on screen meanwhile.
/// Without a terminal, or with <c>--json</c>, it prints one line (or JSON object) per change instead.
/// </summary>
internal static class FleetWatchCommand
{
    /// <summary>Status changes of one instance within <see cref="BurstWindow"/> beyond which they are summarised.</summary>
    public const int BurstChanges = 5;

    /// <summary>The window of a burst.</summary>
    public static readonly TimeSpan BurstWindow = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan[] Backoff =
        [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(8), TimeSpan.FromSeconds(16), TimeSpan.FromSeconds(30)];

    private const string Topic = "fleet:instances";

    public static Command Create()
    {
        var command = new Command("watch", "Watch the fleet live: a table of instances with status, pid, uptime, restarts and last log line; bursts are summarised. Ctrl-C to stop.");
        var all = new Option<bool>("--all") { Description = "Include archived instances." };
        command.Options.Add(all);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("fleet watch", parse, common, async (client, json) =>
        {
            using var ctrlC = new CtrlC(ct);
            var stop = ctrlC.Source;
            var screen = new Screen(json, interactive: !json && !Console.IsOutputRedirected);
            try
            {
                var joined = await ClientCommands.JoinOrThrowAsync(client, Topic, since: null, new JsonObject { ["include_archived"] = parse.GetValue(all) }, stop.Token, untilJoined: true);
                screen.Snapshot(joined.Response);
                foreach (var name in screen.Names)
                {
                    await FollowLogAsync(client, name, stop.Token);
                }
                var events = WatchConnectionAsync(client, screen, stop);
                try
                {
                    await foreach (var message in client.Messages.ReadAllAsync(stop.Token))
                    {
                        if (message.Topic == Topic)
                        {
                            if (screen.Change(message.Event, message.Payload) is { } created)
                            {
                                await FollowLogAsync(client, created, stop.Token);
                            }
                        }
                        else if (message.Topic.StartsWith("logs:", StringComparison.Ordinal) && message.Event is "backlog" or "lines")
                        {
                            screen.LastLine(message.Topic["logs:".Length..], message.Payload);
                        }
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                }
                return await events;
            }
            finally
            {
                screen.Done();
            }
        }, Backoff));
        return command;
    }

    // The newest log line of an instance, for its row (kept across reconnects by the client).
    private static async Task FollowLogAsync(ParleyClient client, string name, CancellationToken ct)
    {
        try
        {
            await client.JoinAsync("logs:" + name, since: null, new JsonObject { ["backlog"] = 1 }, ct);
        }
        catch (InvalidOperationException)
        {
            // already followed
        }
    }

    private static async Task<int> WatchConnectionAsync(ParleyClient client, Screen screen, CancellationTokenSource stop)
    {
        try
        {
            await foreach (var e in client.Events.ReadAllAsync(stop.Token))
            {
                switch (e)
                {
                    case Reconnecting r:
                        screen.Disconnected($"connection lost ({r.Reason}); reconnecting at {r.NextAttemptAt.ToLocalTime():HH:mm:ss} (attempt {r.Attempt})");
                        break;
                    case Rejoined { Topic: Topic } j:
                        screen.Snapshot(j.Reply);
                        break;
                    case AuthFailed a:
                        screen.Disconnected(a.Reason);
                        await stop.CancelAsync();
                        return ExitCodes.Authentication;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        return ExitCodes.Ok;
    }

    /// <summary>What the watcher shows; every method is called from the one reading loop or the event loop, under a lock.</summary>
    private sealed class Screen(bool json, bool interactive)
    {
        private readonly Lock _lock = new();
        private readonly SortedDictionary<string, JsonObject> _instances = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> _lastLines = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Queue<DateTimeOffset>> _changes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _suppressed = new(StringComparer.Ordinal);
        private readonly List<string> _recent = [];
        private string? _disconnected;

        public IReadOnlyList<string> Names
        {
            get
            {
                lock (_lock)
                {
                    return [.. _instances.Keys];
                }
            }
        }

        public void Snapshot(JsonElement snapshot)
        {
            if (snapshot.ValueKind != JsonValueKind.Object || !snapshot.TryGetProperty("instances", out var list))
            {
                return;
            }
            lock (_lock)
            {
                _disconnected = null;
                _instances.Clear();
                foreach (var instance in list.EnumerateArray())
                {
                    _instances[instance.GetProperty("name").GetString()!] = JsonNode.Parse(instance.GetRawText())!.AsObject();
                }
                if (json)
                {
                    ClientCommands.PrintTypedLine(snapshot, "snapshot");
                }
                else if (!interactive)
                {
                    Console.WriteLine($"{Now()} {_instances.Count} instance(s): {string.Join(", ", _instances.Values.Select(i => $"{i["name"]} {i["status"]}"))}");
                }
                Draw();
            }
        }

        // Applies a fleet event; returns the name of a newly created instance (to follow its log).
        public string? Change(string kind, JsonElement payload)
        {
            lock (_lock)
            {
                var name = payload.GetProperty("name").GetString()!;
                var instance = JsonNode.Parse(payload.GetProperty("instance").GetRawText())!.AsObject();
                var created = kind == "instance_created" && !_instances.ContainsKey(name) ? name : null;
                if (kind == "instance_deleted")
                {
                    _instances.Remove(name);
                }
                else
                {
                    _instances[name] = instance;
                }
                Report(name, kind, payload);
                Draw();
                return created;
            }
        }

        public void LastLine(string name, JsonElement payload)
        {
            lock (_lock)
            {
                var lines = payload.GetProperty("lines");
                if (lines.GetArrayLength() > 0)
                {
                    _lastLines[name] = lines[lines.GetArrayLength() - 1].GetString()!;
                    Draw();
                }
            }
        }

        public void Disconnected(string why)
        {
            lock (_lock)
            {
                _disconnected = why;
                if (interactive)
                {
                    Draw();
                }
                else
                {
                    Console.Error.WriteLine($"parley: {why}");
                }
            }
        }

        public void Done()
        {
            if (interactive)
            {
                Console.WriteLine();
            }
        }

        // One line per change, except that an instance's burst is one summary row (and one more for what it hid).
        private void Report(string name, string kind, JsonElement payload)
        {
            var now = DateTimeOffset.UtcNow;
            var times = _changes.TryGetValue(name, out var q) ? q : _changes[name] = new Queue<DateTimeOffset>();
            times.Enqueue(now);
            while (times.Count > 0 && now - times.Peek() > BurstWindow)
            {
                times.Dequeue();
            }
            var status = payload.GetProperty("status").GetString();
            if (times.Count > BurstChanges)
            {
                var hidden = _suppressed[name] = _suppressed.GetValueOrDefault(name) + 1;
                if (hidden == 1)
                {
                    Emit($"{name}: more than {BurstChanges} changes in {BurstWindow.TotalSeconds:0} s (flapping); latest: {status}",
                        new JsonObject { ["type"] = "burst", ["name"] = name, ["changes"] = times.Count, ["window_s"] = BurstWindow.TotalSeconds, ["status"] = status });
                }
                return;
            }
            if (_suppressed.Remove(name, out var quiet))
            {
                Emit($"{name}: the burst is over ({quiet} more change(s) summarised); now {status}",
                    new JsonObject { ["type"] = "burst_end", ["name"] = name, ["summarised"] = quiet, ["status"] = status });
            }
            if (json)
            {
                ClientCommands.PrintTypedLine(payload, kind);
                return;
            }
            Emit($"{name} {Describe(kind, status)}", null);
        }

        private void Emit(string text, JsonObject? asJson)
        {
            if (json)
            {
                if (asJson is not null)
                {
                    Console.WriteLine(asJson.ToJsonString());
                }
                return;
            }
            var row = $"{Now()} {text}";
            if (interactive)
            {
                _recent.Add(row);
                if (_recent.Count > 8)
                {
                    _recent.RemoveAt(0);
                }
            }
            else
            {
                Console.WriteLine(row);
            }
        }

        private static string Describe(string kind, string? status) => kind switch
        {
            "instance_created" => "created",
            "instance_deleted" => "deleted",
            "instance_archived" => "archived",
            "instance_unarchived" => "unarchived",
            _ => status ?? "changed",
        };

        private void Draw()
        {
            if (!interactive)
            {
                return;
            }
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var rows = _instances.Values.Select(i =>
            {
                var name = i["name"]!.GetValue<string>();
                var up = i["status"]!.GetValue<string>() is "running" or "unhealthy" && i["started_at"] is { } started
                    ? Uptime(TimeSpan.FromMilliseconds(now - started.GetValue<long>())) : "-";
                var last = _lastLines.TryGetValue(name, out var l) ? (l.Length > 24 ? l[25..] : l) : "";
                return $"{name,-24} {i["status"],-11} {(i["pid"] is { } pid ? pid.ToString() : "-"),7} {up,9} {i["restarts"],8}  {Trim(last, 60)}";
            });
            var text = new System.Text.StringBuilder("\u001b[H\u001b[2J");
            text.AppendLine(_disconnected is { } why ? $"parley fleet watch — DISCONNECTED: {why}" : $"parley fleet watch — {_instances.Count} instance(s), {DateTime.Now:HH:mm:ss}  (Ctrl-C to stop)");
            text.AppendLine();
            text.AppendLine($"{"NAME",-24} {"STATUS",-11} {"PID",7} {"UPTIME",9} {"RESTARTS",8}  LAST LOG LINE");
            foreach (var row in rows)
            {
                text.AppendLine(row);
            }
            text.AppendLine();
            foreach (var row in _recent)
            {
                text.AppendLine(row);
            }
            Console.Write(text.ToString());
        }

        private static string Uptime(TimeSpan up) => up.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)up.TotalHours}h{up.Minutes:00}m")
            : string.Create(CultureInfo.InvariantCulture, $"{up.Minutes}m{up.Seconds:00}s");

        private static string Trim(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";

        private static string Now() => DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture);
    }
}
