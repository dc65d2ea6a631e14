using System.CommandLine;
using System.Text;
using System.Text.Json.Nodes;
using Parley.Client;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley peers [--channel C] [--json]</c>: who is online where, with status and summary, from
/// <c>GET /api/presence</c> (docs/cli.md). Credentials as for <see cref="ClientCommands"/>; a private
/// channel's presence is refused (exit 3) to anyone who may not join it.
/// </summary>
internal static class PeersCommand
{
    public static Command Create()
    {
        var command = new Command("peers", "Who is online on which channel: status, summary, client kinds.");
        var channel = new Option<string?>("--channel") { Description = "Only this channel, e.g. ops or room:ops (default: every channel you may join)." };
        command.Options.Add(channel);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => IdentityCommands.RunAsync("peers", parse.GetValue(common.Json), async () =>
        {
            var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
            var bearer = credentials is null ? null : await credentials(new CredentialRequest(false), ct);
            var topic = parse.GetValue(channel) is { Length: > 0 } c ? ClientCommands.Topic(c) : null;
            var path = topic is null ? "/api/presence" : "/api/presence?topic=" + Uri.EscapeDataString(topic);
            var reply = await IdentityCommands.GetAsync(server, path, bearer, ct);
            return (reply, Describe(reply, topic));
        }));
        return command;
    }

    /// <summary>One block per channel: a line per user with status, client kinds (one per connection) and summary.</summary>
    internal static string Describe(JsonObject reply, string? topic)
    {
        var text = new StringBuilder();
        foreach (var entry in reply["topics"]?.AsArray() ?? [])
        {
            var presences = entry!["presences"]!.AsObject();
            if (presences.Count == 0)
            {
                continue;
            }
            if (text.Length > 0)
            {
                text.AppendLine();
            }
            text.Append(entry["topic"]!.GetValue<string>());
            var width = presences.Max(p => p.Key.Length);
            foreach (var (name, presence) in presences)
            {
                var metas = presence!["metas"]!.AsArray();
                var first = metas[0]!;
                var clients = string.Join(",", metas.Select(m => m!["client"]!.GetValue<string>()).Order(StringComparer.Ordinal));
                var summary = first["summary"]?.GetValue<string>();
                text.AppendLine().Append("  ").Append(name.PadRight(width)).Append("  ")
                    .Append(first["status"]!.GetValue<string>().PadRight(7)).Append("  ").Append(clients);
                if (!string.IsNullOrEmpty(summary))
                {
                    text.Append("  ").Append(summary);
                }
            }
        }
        return text.Length > 0 ? text.ToString() : topic is null ? "(nobody is on any channel you can see)" : $"(nobody is on {topic})";
    }
}
