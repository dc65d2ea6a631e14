using System.CommandLine;
using System.Text.Json.Nodes;
using Parley.Client;

namespace Parley.Cli.Commands;

/// <summary>
/// Hub administration over the HTTP API (docs/cli.md): <c>keys</c>, <c>invites</c>, <c>channels</c>
/// and <c>admin</c>. Credentials as for <see cref="ClientCommands"/>; the hub decides what the caller may do.
/// </summary>
internal static class AdminCommands
{
    // One API call per verb: build the request from the parse, print the reply (JSON, or a summary line).
    internal static Command Verb(string name, string description, Action<Command> addArguments,
        Func<ParseResult, (HttpMethod Method, string Path, object? Body)> request, Func<JsonObject, string> summary)
    {
        var command = new Command(name, description);
        addArguments(command);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => IdentityCommands.RunAsync(name, parse.GetValue(common.Json), async () =>
        {
            var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
            var bearer = credentials is null ? null : await credentials(new CredentialRequest(false), ct);
            var (method, path, body) = request(parse);
            var reply = await IdentityCommands.CallAsync(server, method, path, body, bearer, ct);
            return (reply, summary(reply));
        }));
        return command;
    }

    internal static string Escape(string segment) => Uri.EscapeDataString(segment);

    internal static string Lines(JsonObject reply, string array, Func<JsonNode, string> line) =>
        reply[array] is JsonArray items && items.Count > 0 ? string.Join(Environment.NewLine, items.Select(i => line(i!))) : $"(no {array})";

    public static Command Keys()
    {
        var keys = new Command("keys", "API keys: create (shown once), list, revoke.");
        var keyName = new Argument<string>("key-name") { Description = "A name for the key (2-32 of a-z 0-9 _ -)." };
        var scope = new Option<string?>("--scope") { Description = "read, write (default) or admin." };
        var topics = new Option<string?>("--topics") { Description = "Restrict the key to topics matching this pattern, e.g. room:ci-*." };
        var expires = new Option<long?>("--expires-in") { Description = "Lifetime in seconds (default: no expiry)." };
        var user = new Option<string?>("--user") { Description = "Create the key for another user (admins)." };
        keys.Subcommands.Add(Verb("create", "Create an API key; the secret is printed once.",
            c => { c.Arguments.Add(keyName); c.Options.Add(scope); c.Options.Add(topics); c.Options.Add(expires); c.Options.Add(user); },
            p => (HttpMethod.Post, "/api/keys", new { name = p.GetValue(keyName), scope = p.GetValue(scope) ?? "write", topics = p.GetValue(topics), expires_in_s = p.GetValue(expires), user = p.GetValue(user) }),
            r => $"key {r["id"]} ({r["scope"]}): {r["key"]}\nStore it now: it is not shown again."));
        keys.Subcommands.Add(Verb("list", "List your API keys (admins: all).", _ => { },
            _ => (HttpMethod.Get, "/api/keys", null),
            r => Lines(r, "keys", k => $"{k["id"]}  {k["name"]}  {k["scope"]}{(k["topics"] is { } t ? "  " + t : "")}{(k["revoked_at"] is not null ? "  revoked" : "")}")));
        var id = new Argument<string>("id") { Description = "The key's id." };
        keys.Subcommands.Add(Verb("revoke", "Revoke an API key; sockets using it close at once.", c => c.Arguments.Add(id),
            p => (HttpMethod.Delete, "/api/keys/" + Escape(p.GetValue(id)!), null),
            _ => "revoked"));
        return keys;
    }

    public static Command Invites()
    {
        var invites = new Command("invites", "Invite codes (admins): create, list, revoke.");
        var role = new Option<string?>("--role") { Description = "guest, member (default) or admin (owners only)." };
        var maxUses = new Option<long?>("--max-uses") { Description = "How many registrations it allows (default 1)." };
        var expires = new Option<long?>("--expires-in") { Description = "Lifetime in seconds (default 7 days)." };
        invites.Subcommands.Add(Verb("create", "Create an invite code.",
            c => { c.Options.Add(role); c.Options.Add(maxUses); c.Options.Add(expires); },
            p => (HttpMethod.Post, "/api/invites", new { role = p.GetValue(role) ?? "member", max_uses = p.GetValue(maxUses) ?? 1, expires_in_s = p.GetValue(expires) }),
            r => $"invite {r["code"]} ({r["role"]}, {r["max_uses"]} use(s))"));
        invites.Subcommands.Add(Verb("list", "List invite codes.", _ => { },
            _ => (HttpMethod.Get, "/api/invites", null),
            r => Lines(r, "invites", i => $"{i["code"]}  {i["role"]}  {i["used"]}/{i["max_uses"]}{(i["revoked_at"] is not null ? "  revoked" : "")}")));
        var code = new Argument<string>("code") { Description = "The invite code." };
        invites.Subcommands.Add(Verb("revoke", "Revoke an invite code.", c => c.Arguments.Add(code),
            p => (HttpMethod.Delete, "/api/invites/" + Escape(p.GetValue(code)!), null),
            _ => "revoked"));
        return invites;
    }

    public static Command Channels()
    {
        var channels = new Command("channels", "Channels: list, create, info, delete, members.");
        var channel = new Argument<string>("channel") { Description = "The channel, e.g. room:ops." };
        var isPrivate = new Option<bool>("--private") { Description = "Only members (and hub admins) may join." };
        channels.Subcommands.Add(Verb("list", "List the channels you can see.", _ => { },
            _ => (HttpMethod.Get, "/api/channels", null),
            r => Lines(r, "channels", c => $"{c["topic"]}{(c["private"]!.GetValue<bool>() ? "  private" : "")}{(c["deleted_at"] is not null ? "  deleted" : "")}")));
        channels.Subcommands.Add(Verb("create", "Register a channel (you become its admin).", c => { c.Arguments.Add(channel); c.Options.Add(isPrivate); },
            p => (HttpMethod.Post, "/api/channels", new { topic = ClientCommands.Topic(p.GetValue(channel)!), @private = p.GetValue(isPrivate) }),
            r => $"created {r["topic"]}{(r["private"]!.GetValue<bool>() ? " (private)" : "")}"));
        channels.Subcommands.Add(Verb("info", "Show a channel: public or private, who made it, live subscribers, the history head and epoch.", c => c.Arguments.Add(channel),
            p => (HttpMethod.Get, "/api/channels/" + Escape(ClientCommands.Topic(p.GetValue(channel)!)), null),
            r => $"{r["topic"]}: {(r["private"]!.GetValue<bool>() ? "private" : "public")}" +
                (r["registered"]!.GetValue<bool>() ? $", registered by {r["created_by"]} at {DateTimeOffset.FromUnixTimeMilliseconds(r["created_at"]!.GetValue<long>()):u}" : ", not registered (anyone may join)") +
                (r["deleted_at"] is not null ? ", deleted" : "") +
                $"\n{r["subscribers"]} subscriber(s) now; history head {r["head"]} (first retained {r["first_retained"]}), epoch {r["epoch"]}" +
                (r["members"] is JsonArray m ? $"\n{m.Count} member(s): {string.Join(", ", m.Select(x => x!["name"] + (x["admin"]!.GetValue<bool>() ? " (admin)" : "")))}" : "")));
        channels.Subcommands.Add(Verb("members", "List a registered channel's members (members and hub admins).", c => c.Arguments.Add(channel),
            p => (HttpMethod.Get, $"/api/channels/{Escape(ClientCommands.Topic(p.GetValue(channel)!))}/members", null),
            r => Lines(r, "members", x => $"{x["name"]}{(x["admin"]!.GetValue<bool>() ? "  admin" : "")}")));
        channels.Subcommands.Add(Verb("delete", "Delete a channel (its subscribers are closed; the name is not reused).", c => c.Arguments.Add(channel),
            p => (HttpMethod.Delete, "/api/channels/" + Escape(ClientCommands.Topic(p.GetValue(channel)!)), null),
            _ => "deleted"));
        var member = new Argument<string>("user") { Description = "The user." };
        var admin = new Option<bool>("--admin") { Description = "Make the member a channel admin." };
        channels.Subcommands.Add(Verb("add-member", "Add a member to a channel.", c => { c.Arguments.Add(channel); c.Arguments.Add(member); c.Options.Add(admin); },
            p => (HttpMethod.Post, $"/api/channels/{Escape(ClientCommands.Topic(p.GetValue(channel)!))}/members", new { user = p.GetValue(member), admin = p.GetValue(admin) }),
            _ => "added"));
        channels.Subcommands.Add(Verb("remove-member", "Remove a member (their live subscription ends on a private channel).", c => { c.Arguments.Add(channel); c.Arguments.Add(member); },
            p => (HttpMethod.Delete, $"/api/channels/{Escape(ClientCommands.Topic(p.GetValue(channel)!))}/members/{Escape(p.GetValue(member)!)}", null),
            _ => "removed"));
        return channels;
    }

    public static Command Admin()
    {
        var admin = new Command("admin", "Hub administration: users, sessions, audit, kick, ban, unban, role.");
        var user = new Argument<string>("user") { Description = "The user." };
        admin.Subcommands.Add(Verb("users", "List users.", _ => { }, _ => (HttpMethod.Get, "/api/users", null),
            r => Lines(r, "users", u => $"{u["name"]}  {u["role"]}{(u["banned_at"] is not null ? "  banned" : "")}")));
        admin.Subcommands.Add(Verb("sessions", "List live sockets.", _ => { }, _ => (HttpMethod.Get, "/api/sessions", null),
            r => Lines(r, "sessions", x => $"{x["id"]}  {x["name"]}  {x["role"]}  topics {x["topics"]}")));
        var after = new Option<long?>("--after") { Description = "Entries after this sequence number." };
        var limit = new Option<int?>("--limit") { Description = "How many entries (default 100)." };
        admin.Subcommands.Add(Verb("audit", "Read the audit log.", c => { c.Options.Add(after); c.Options.Add(limit); },
            p => (HttpMethod.Get, $"/api/audit?after={p.GetValue(after) ?? 0}&limit={p.GetValue(limit) ?? 100}", null),
            r => Lines(r, "entries", e => $"{e["seq"]}  {DateTimeOffset.FromUnixTimeMilliseconds(e["ts"]!.GetValue<long>()):u}  {e["event"]}  {e["actor"]} -> {e["subject"]}  {e["detail"]}")));
        foreach (var (verb, path, description) in new[]
        {
            ("kick", "kick", "Close a user's sockets (4409)."),
            ("ban", "ban", "Ban a user: no login, and their sockets close (4403)."),
            ("revoke", "revoke", "Revoke every API key and token of a user; their sockets close."),
        })
        {
            admin.Subcommands.Add(Verb(verb, description, c => c.Arguments.Add(user),
                p => (HttpMethod.Post, $"/api/users/{Escape(p.GetValue(user)!)}/{path}", null),
                _ => "done"));
        }
        admin.Subcommands.Add(Verb("unban", "Lift a ban.", c => c.Arguments.Add(user),
            p => (HttpMethod.Delete, $"/api/users/{Escape(p.GetValue(user)!)}/ban", null),
            _ => "done"));
        var role = new Argument<string>("role") { Description = "guest, member, admin or owner." };
        admin.Subcommands.Add(Verb("role", "Change a user's role (live sockets follow at once).", c => { c.Arguments.Add(user); c.Arguments.Add(role); },
            p => (HttpMethod.Post, $"/api/users/{Escape(p.GetValue(user)!)}/role", new { role = p.GetValue(role) }),
            r => $"role {r["role"]}"));
        return admin;
    }
}
