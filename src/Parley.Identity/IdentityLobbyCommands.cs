using System.Text.Json;
using Parley.Hub;
using Parley.Hub.Auth;
using Parley.Hub.Lobby;
using Parley.Protocol;

namespace Parley.Identity;

/// <summary>
/// The user and channel operations as <c>hub:lobby</c> pushes, for clients that live on the socket
/// (docs/protocol.md §10): the same checks and effects as the HTTP API, answered with a reply
/// (<c>ok</c> with the result, or <c>error</c> with the identity error code as the reason).
/// </summary>
public static partial class IdentityLobbyCommands
{
    public static void Register(LobbyChannel lobby, IdentityService identity, ParleyHub hub)
    {
        ArgumentNullException.ThrowIfNull(lobby);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(hub);

        lobby.Register("admin.users", async (caller, _, ct) =>
        {
            var users = await identity.ListUsersAsync(caller, ct);
            return w => IdentityJson.WriteArray(w, "users", users, IdentityJson.WriteUser);
        });
        lobby.Register("admin.sessions", (caller, _, _) =>
        {
            if (!caller.IsAdmin)
            {
                throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "this needs an admin");
            }
            var sessions = hub.Connections;
            return ValueTask.FromResult<Action<Utf8JsonWriter>>(w => IdentityJson.WriteArray(w, "sessions", sessions, IdentityJson.WriteSession));
        });
        lobby.Register("admin.kick", (caller, p, ct) => identity.KickAsync(caller, Text(p, "user"), ct));
        lobby.Register("admin.ban", (caller, p, ct) => identity.BanAsync(caller, Text(p, "user"), ct));
        lobby.Register("admin.unban", (caller, p, ct) => identity.UnbanAsync(caller, Text(p, "user"), ct));
        lobby.Register("admin.revoke_user", (caller, p, ct) => identity.RevokeUserCredentialsAsync(caller, Text(p, "user"), ct));
        lobby.Register("admin.revoke_key", (caller, p, ct) => identity.RevokeApiKeyAsync(caller, Text(p, "id"), ct));
        lobby.Register("admin.role", (caller, p, ct) =>
        {
            if (!HubRoles.TryParse(Text(p, "role"), out var role))
            {
                throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_role", "role is guest, member, admin or owner");
            }
            return identity.SetRoleAsync(caller, Text(p, "user"), role, ct);
        });
        lobby.Register("channel.list", async (caller, _, ct) =>
        {
            var channels = await identity.ListChannelsAsync(caller, ct);
            return w => IdentityJson.WriteArray(w, "channels", channels,
                (writer, c) => IdentityJson.WriteChannel(writer, c, caller.IsAdmin || c.Members.Any(m => m.UserName == caller.Name)));
        });
        lobby.Register("channel.create", async (caller, p, ct) =>
        {
            var channel = await identity.CreateChannelAsync(caller, Text(p, "topic"), Flag(p, "private"), ct);
            return w => IdentityJson.WriteChannel(w, channel, withMembers: true);
        });
        lobby.Register("channel.visibility", (caller, p, ct) => identity.SetChannelPrivateAsync(caller, Text(p, "topic"), Flag(p, "private"), ct));
        lobby.Register("channel.rename", (caller, p, ct) => identity.RenameChannelAsync(caller, Text(p, "topic"), Text(p, "to"), ct));
        lobby.Register("channel.delete", (caller, p, ct) => identity.DeleteChannelAsync(caller, Text(p, "topic"), ct));
        lobby.Register("channel.add_member", (caller, p, ct) => identity.AddChannelMemberAsync(caller, Text(p, "topic"), Text(p, "user"), Flag(p, "admin"), ct));
        lobby.Register("channel.remove_member", (caller, p, ct) => identity.RemoveChannelMemberAsync(caller, Text(p, "topic"), Text(p, "user"), ct));
        RegisterGroups(lobby, identity);
    }

    /// <summary>The identity caller behind a socket's principal.</summary>
    public static Caller CallerOf(ConnectionPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        var userName = principal.Name.StartsWith("key:", StringComparison.Ordinal) || !principal.IsAuthenticated ? null : principal.Name;
        return new Caller(principal.Name, IdentityAuthenticator.RoleOf(principal), userName, principal.CredentialId, principal.TopicPattern, principal.ExpiresAtMs);
    }

    // A command with nothing to return answers {done: true}.
    private static void Register(this LobbyChannel lobby, string @event, Func<Caller, JsonElement, CancellationToken, Task> act) =>
        lobby.Register(@event, async (caller, payload, ct) =>
        {
            await act(caller, payload, ct);
            return static w => w.WriteBoolean("done", true);
        });

    private static void Register(this LobbyChannel lobby, string @event, Func<Caller, JsonElement, CancellationToken, ValueTask<Action<Utf8JsonWriter>>> handle) =>
        lobby.Register(@event, async (connection, message, ct) =>
        {
            try
            {
                var write = await handle(CallerOf(connection.Principal), message.Payload, ct);
                connection.Send(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk, write, static (w, body) =>
                {
                    w.WriteStartObject();
                    body(w);
                    w.WriteEndObject();
                }));
            }
            catch (IdentityException ex)
            {
                connection.ReplyError(message, ex.Code, ex.Message);
            }
        });

    private static string Text(JsonElement payload, string name) =>
        payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_payload", $"'{name}' is required (a string)");

    private static bool Flag(JsonElement payload, string name) =>
        payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.True;
}
