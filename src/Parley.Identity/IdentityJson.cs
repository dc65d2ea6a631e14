using System.Text.Json;
using Parley.Hub.Connections;

namespace Parley.Identity;

/// <summary>The JSON shapes of identity objects, shared by the HTTP API and the <c>hub:lobby</c> commands.</summary>
public static partial class IdentityJson
{
    public static void WriteUser(Utf8JsonWriter w, UserRecord user)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(user);
        w.WriteString("name", user.Name);
        w.WriteString("role", HubRoles.Name(user.Role));
        w.WriteNumber("created_at", user.CreatedAtMs);
        WriteOptional(w, "banned_at", user.BannedAtMs);
    }

    public static void WriteSession(Utf8JsonWriter w, HubConnection connection)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(connection);
        var principal = connection.Principal;
        w.WriteString("id", connection.Id);
        w.WriteString("name", principal.Name);
        if (principal.Roles.Count > 0)
        {
            w.WriteString("role", principal.Roles[0]);
        }
        w.WriteNumber("connected_at", connection.ConnectedAt.ToUnixTimeMilliseconds());
        w.WriteNumber("topics", connection.JoinedCount);
        WriteOptional(w, "expires_at", principal.ExpiresAtMs);
        WriteOptional(w, "api_key_id", principal.CredentialId);
    }

    public static void WriteKey(Utf8JsonWriter w, ApiKeyRecord key)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(key);
        w.WriteString("id", key.Id);
        w.WriteString("name", key.Name);
        WriteOptional(w, "user", key.UserName);
        w.WriteString("scope", ApiKeyScopes.Name(key.Scope));
        WriteOptional(w, "topics", key.TopicPattern);
        w.WriteNumber("created_at", key.CreatedAtMs);
        WriteOptional(w, "expires_at", key.ExpiresAtMs);
        WriteOptional(w, "revoked_at", key.RevokedAtMs);
    }

    public static void WriteInvite(Utf8JsonWriter w, InviteRecord invite)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(invite);
        w.WriteString("code", invite.Code);
        w.WriteString("role", HubRoles.Name(invite.Role));
        w.WriteNumber("max_uses", invite.MaxUses);
        w.WriteNumber("used", invite.UsedCount);
        w.WriteString("created_by", invite.CreatedBy);
        w.WriteNumber("expires_at", invite.ExpiresAtMs);
        WriteOptional(w, "revoked_at", invite.RevokedAtMs);
    }

    public static void WriteAuditEntry(Utf8JsonWriter w, AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(entry);
        w.WriteNumber("seq", entry.Seq);
        w.WriteNumber("ts", entry.TimestampMs);
        w.WriteString("event", entry.Event);
        WriteOptional(w, "actor", entry.Actor);
        WriteOptional(w, "subject", entry.Subject);
        WriteOptional(w, "address", entry.Address);
        WriteOptional(w, "detail", entry.Detail);
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, string? value)
    {
        if (value is not null)
        {
            w.WriteString(name, value);
        }
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, long? value)
    {
        if (value is { } number)
        {
            w.WriteNumber(name, number);
        }
    }

    public static void WriteChannel(Utf8JsonWriter w, ChannelRecord channel, bool withMembers)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(channel);
        w.WriteString("topic", channel.Topic);
        w.WriteBoolean("private", channel.IsPrivate);
        w.WriteString("created_by", channel.CreatedBy);
        w.WriteNumber("created_at", channel.CreatedAtMs);
        WriteOptional(w, "deleted_at", channel.DeletedAtMs);
        if (withMembers)
        {
            WriteArray(w, "members", channel.Members, WriteMember);
        }
    }

    /// <summary>Writes a channel member's fields: name, admin.</summary>
    public static void WriteMember(Utf8JsonWriter w, ChannelMember member)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(member);
        w.WriteString("name", member.UserName);
        w.WriteBoolean("admin", member.IsAdmin);
    }

    /// <summary>Writes <paramref name="name"/> as an array of objects, one per item.</summary>
    public static void WriteArray<T>(Utf8JsonWriter w, string name, IEnumerable<T> items, Action<Utf8JsonWriter, T> write)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(write);
        w.WriteStartArray(name);
        foreach (var item in items)
        {
            w.WriteStartObject();
            write(w, item);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
