using System.Buffers.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Parley.Hub;
using Parley.Identity;

namespace Parley.Server.Identity;

/// <summary>
/// The identity HTTP API under <c>/api</c> (docs/security.md, docs/protocol.md §Identity): registration,
/// challenge-response login, token refresh, API keys, invites and the audit log. Requests and replies
/// are JSON; errors are <c>{"error": code, "message": what to do}</c> with a fitting status.
/// Authenticated calls carry <c>Authorization: Bearer &lt;access token or API key&gt;</c>.
/// </summary>
// ASP0016 misreads the inner handler lambdas (JsonElement → Task<(status, writer)>) as request delegates.
#pragma warning disable ASP0016
internal static partial class IdentityEndpoints
{
    private const long MaxBodyBytes = 64 * 1024;

    /// <param name="anonymousPresence">Let callers without a credential read presence (a hub run with <c>--insecure-no-auth</c>).</param>
    public static void Map(IEndpointRouteBuilder app, IdentityService identity, ParleyHub hub, bool anonymousPresence = false)
    {
        MapAdmin(app, identity, hub);
        MapChannels(app, identity, hub);
        MapPresence(app, identity, hub, anonymousPresence);
        MapGroups(app, identity);

        app.MapPost("/api/register", context => HandleAsync(context, async body =>
        {
            var name = RequiredString(body, "name");
            var publicKey = RequiredBase64Url(body, "public_key");
            var (role, keyId) = await identity.RegisterAsync(name, publicKey, OptionalString(body, "label"), OptionalString(body, "invite"), Address(context), context.RequestAborted);
            return (StatusCodes.Status201Created, w =>
            {
                w.WriteString("name", name);
                w.WriteString("role", HubRoles.Name(role));
                w.WriteString("key_id", keyId);
                w.WriteString("hub_id", identity.HubId);
            });
        }));

        app.MapPost("/api/auth/challenge", context => HandleAsync(context, body =>
        {
            var challenge = identity.IssueChallenge(RequiredString(body, "name"), Address(context));
            return Task.FromResult<(int, Action<Utf8JsonWriter>)>((StatusCodes.Status200OK, w =>
            {
                w.WriteString("nonce", challenge.Nonce);
                w.WriteString("hub_id", challenge.HubId);
                w.WriteNumber("expires_at", challenge.ExpiresAtMs);
            }));
        }));

        app.MapPost("/api/auth/login", context => HandleAsync(context, async body =>
        {
            var pair = await identity.LoginAsync(RequiredString(body, "name"), RequiredString(body, "nonce"), RequiredInt64(body, "timestamp"),
                RequiredBase64Url(body, "signature"), Address(context), context.RequestAborted);
            return (StatusCodes.Status200OK, TokenWriter(pair));
        }));

        app.MapPost("/api/auth/refresh", context => HandleAsync(context, async body =>
        {
            var pair = await identity.RefreshAsync(RequiredString(body, "refresh_token"), Address(context), context.RequestAborted);
            return (StatusCodes.Status200OK, TokenWriter(pair));
        }));

        app.MapPost("/api/auth/logout", context => HandleAsync(context, async body =>
        {
            var user = await identity.LogoutAsync(RequiredString(body, "refresh_token"), Address(context), context.RequestAborted);
            return (StatusCodes.Status200OK, w =>
            {
                w.WriteString("name", user);
                w.WriteBoolean("logged_out", true);
            });
        }));

        app.MapGet("/api/whoami", context => HandleAuthenticatedAsync(context, identity, readBody: false, (caller, _) =>
            Task.FromResult<(int, Action<Utf8JsonWriter>)>((StatusCodes.Status200OK, w =>
            {
                w.WriteString("name", caller.Name);
                w.WriteString("role", HubRoles.Name(caller.Role));
                w.WriteString("hub_id", identity.HubId);
                if (caller.ApiKeyId is not null)
                {
                    w.WriteString("api_key_id", caller.ApiKeyId);
                }
                if (caller.ExpiresAtMs is { } expires)
                {
                    w.WriteNumber("expires_at", expires);
                }
            }))));

        app.MapPost("/api/keys", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var scopeName = OptionalString(body, "scope") ?? "write";
            if (!ApiKeyScopes.TryParse(scopeName, out var scope))
            {
                throw Bad("invalid_scope", "scope is read, write or admin");
            }
            var expiresIn = Lifetime(body);
            var (key, secret) = await identity.CreateApiKeyAsync(caller, RequiredString(body, "name"), scope, OptionalString(body, "topics"),
                expiresIn, OptionalString(body, "user") ?? caller.UserName, context.RequestAborted);
            return (StatusCodes.Status201Created, w =>
            {
                w.WriteString("key", secret);
                IdentityJson.WriteKey(w, key);
            });
        }));

        app.MapGet("/api/keys", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var keys = await identity.ListApiKeysAsync(caller, context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "keys", keys, IdentityJson.WriteKey));
        }));

        app.MapDelete("/api/keys/{id}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.RevokeApiKeyAsync(caller, (string)context.Request.RouteValues["id"]!, context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("revoked", true));
        }));

        app.MapPost("/api/invites", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var roleName = OptionalString(body, "role") ?? "member";
            if (!HubRoles.TryParse(roleName, out var role))
            {
                throw Bad("invalid_role", "role is guest, member or admin");
            }
            var maxUses = OptionalInt64(body, "max_uses") ?? 1;
            if (maxUses is < 1 or > 10_000)
            {
                throw Bad("invalid_max_uses", "max_uses must be between 1 and 10000");
            }
            var invite = await identity.CreateInviteAsync(caller, role, (int)maxUses, Lifetime(body), context.RequestAborted);
            return (StatusCodes.Status201Created, w => IdentityJson.WriteInvite(w, invite));
        }));

        app.MapGet("/api/invites", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var invites = await identity.ListInvitesAsync(caller, context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "invites", invites, IdentityJson.WriteInvite));
        }));

        app.MapDelete("/api/invites/{code}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.RevokeInviteAsync(caller, (string)context.Request.RouteValues["code"]!, context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("revoked", true));
        }));

        app.MapGet("/api/audit", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var after = long.TryParse(context.Request.Query["after"], out var a) ? a : 0;
            var limit = int.TryParse(context.Request.Query["limit"], out var l) ? l : 100;
            var entries = await identity.ReadAuditAsync(caller, after, limit, context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "entries", entries, IdentityJson.WriteAuditEntry));
        }));
    }

    // Users and live sessions (admins). Each change reaches live sockets at once (LiveAccess).
    private static void MapAdmin(IEndpointRouteBuilder app, IdentityService identity, ParleyHub hub)
    {
        app.MapGet("/api/users", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var users = await identity.ListUsersAsync(caller, context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "users", users, IdentityJson.WriteUser));
        }));

        app.MapPost("/api/users/{name}/role", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            if (!HubRoles.TryParse(RequiredString(body, "role"), out var role))
            {
                throw Bad("invalid_role", "role is guest, member, admin or owner");
            }
            await identity.SetRoleAsync(caller, UserParameter(context), role, context.RequestAborted);
            return (StatusCodes.Status200OK, w => w.WriteString("role", HubRoles.Name(role)));
        }));

        app.MapPost("/api/users/{name}/ban", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.BanAsync(caller, UserParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("banned", true));
        }));

        app.MapDelete("/api/users/{name}/ban", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.UnbanAsync(caller, UserParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("banned", false));
        }));

        app.MapPost("/api/users/{name}/kick", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.KickAsync(caller, UserParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("kicked", true));
        }));

        app.MapPost("/api/users/{name}/revoke", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.RevokeUserCredentialsAsync(caller, UserParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("revoked", true));
        }));

        app.MapGet("/api/sessions", context => HandleAuthenticatedAsync(context, identity, readBody: false, (caller, _) =>
        {
            if (!caller.IsAdmin)
            {
                throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "this needs an admin");
            }
            var sessions = hub.Connections;
            return Task.FromResult<(int, Action<Utf8JsonWriter>)>((StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "sessions", sessions, IdentityJson.WriteSession)));
        }));
    }

    // expires_in_s: 1 second to 10 years.
    private static TimeSpan? Lifetime(JsonElement body) => OptionalInt64(body, "expires_in_s") switch
    {
        null => null,
        >= 1 and <= 10L * 365 * 24 * 3600 and var seconds => TimeSpan.FromSeconds(seconds),
        _ => throw Bad("invalid_expiry", "expires_in_s must be between 1 and 315360000 (10 years)"),
    };

    private static string UserParameter(HttpContext context) => (string)context.Request.RouteValues["name"]!;

    private static string TopicParameter(HttpContext context) => Uri.UnescapeDataString((string)context.Request.RouteValues["topic"]!);

    // Channels: public or private rooms with members; every change reaches live subscribers at once.
    private static void MapChannels(IEndpointRouteBuilder app, IdentityService identity, ParleyHub hub)
    {
        app.MapPost("/api/channels", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var isPrivate = body.TryGetProperty("private", out var p) && p.ValueKind == JsonValueKind.True;
            var channel = await identity.CreateChannelAsync(caller, RequiredString(body, "topic"), isPrivate, context.RequestAborted);
            return (StatusCodes.Status201Created, w => IdentityJson.WriteChannel(w, channel, withMembers: true));
        }));

        app.MapGet("/api/channels", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var channels = await identity.ListChannelsAsync(caller, context.RequestAborted);
            return (StatusCodes.Status200OK, w => IdentityJson.WriteArray(w, "channels", channels,
                (writer, c) => IdentityJson.WriteChannel(writer, c, caller.IsAdmin || c.Members.Any(m => m.UserName == caller.Name))));
        }));

        // One channel: its registration (if any), members when the caller may see them, and the hub's live
        // view of it (subscribers now, the history head and epoch a client would recover from).
        app.MapGet("/api/channels/{topic}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var topic = TopicParameter(context);
            var (channel, membersVisible) = await identity.DescribeChannelAsync(caller, topic, context.RequestAborted);
            var position = await hub.History.GetPositionAsync(topic, context.RequestAborted);
            var subscribers = hub.Topics.TryGet(topic, out var live) ? live!.SubscriberCount : 0;
            return (StatusCodes.Status200OK, w =>
            {
                if (channel is null)
                {
                    w.WriteString("topic", topic);
                    w.WriteBoolean("private", false);
                }
                else
                {
                    IdentityJson.WriteChannel(w, channel, membersVisible);
                }
                w.WriteBoolean("registered", channel is not null);
                w.WriteNumber("subscribers", subscribers);
                w.WriteNumber("head", position.Head);
                w.WriteNumber("first_retained", position.FirstRetained);
                w.WriteString("epoch", position.Epoch);
            });
        }));

        app.MapGet("/api/channels/{topic}/members", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            var topic = TopicParameter(context);
            var (channel, membersVisible) = await identity.DescribeChannelAsync(caller, topic, context.RequestAborted);
            if (channel is null)
            {
                throw new IdentityException(IdentityErrorKind.NotFound, "channel_not_found", $"{topic} is not a registered channel, so it has no members (anyone may join it)");
            }
            if (!membersVisible)
            {
                throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"only {topic}'s members and hub admins see its members");
            }
            return (StatusCodes.Status200OK, w =>
            {
                w.WriteString("topic", topic);
                IdentityJson.WriteArray(w, "members", channel.Members, IdentityJson.WriteMember);
            });
        }));

        app.MapPost("/api/channels/{topic}/visibility", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            if (!body.TryGetProperty("private", out var p) || p.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                throw Bad("invalid_request", "'private' is required (true or false)");
            }
            var isPrivate = p.GetBoolean(); // read now: the body is disposed before the reply is written
            await identity.SetChannelPrivateAsync(caller, TopicParameter(context), isPrivate, context.RequestAborted);
            return (StatusCodes.Status200OK, w => w.WriteBoolean("private", isPrivate));
        }));

        app.MapPost("/api/channels/{topic}/rename", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var to = RequiredString(body, "topic");
            await identity.RenameChannelAsync(caller, TopicParameter(context), to, context.RequestAborted);
            return (StatusCodes.Status200OK, w => w.WriteString("topic", to));
        }));

        app.MapDelete("/api/channels/{topic}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.DeleteChannelAsync(caller, TopicParameter(context), context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("deleted", true));
        }));

        app.MapPost("/api/channels/{topic}/members", context => HandleAuthenticatedAsync(context, identity, readBody: true, async (caller, body) =>
        {
            var isAdmin = body.TryGetProperty("admin", out var a) && a.ValueKind == JsonValueKind.True;
            await identity.AddChannelMemberAsync(caller, TopicParameter(context), RequiredString(body, "user"), isAdmin, context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("added", true));
        }));

        app.MapDelete("/api/channels/{topic}/members/{user}", context => HandleAuthenticatedAsync(context, identity, readBody: false, async (caller, _) =>
        {
            await identity.RemoveChannelMemberAsync(caller, TopicParameter(context), (string)context.Request.RouteValues["user"]!, context.RequestAborted);
            return (StatusCodes.Status200OK, static w => w.WriteBoolean("removed", true));
        }));
    }

    // ---- request plumbing ----

    private static Task HandleAsync(HttpContext context, Func<JsonElement, Task<(int Status, Action<Utf8JsonWriter> Write)>> handle) =>
        RunAsync(context, async () =>
        {
            using var body = await ReadBodyAsync(context);
            return await handle(body.RootElement);
        });

    private static Task HandleAuthenticatedAsync(HttpContext context, IdentityService identity, bool readBody, Func<Caller, JsonElement, Task<(int Status, Action<Utf8JsonWriter> Write)>> handle) =>
        RunAsync(context, async () =>
        {
            var header = context.Request.Headers.Authorization.ToString();
            var token = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header["Bearer ".Length..].Trim() : null;
            var (caller, error) = await identity.AuthenticateAsync(token, context.RequestAborted);
            if (caller is null)
            {
                throw error switch
                {
                    "missing" => new IdentityException(IdentityErrorKind.Unauthorized, "unauthenticated", "send Authorization: Bearer <access token or API key>"),
                    "expired" => new IdentityException(IdentityErrorKind.Unauthorized, "token_expired", "the access token expired: refresh it"),
                    "revoked" => new IdentityException(IdentityErrorKind.Forbidden, "revoked", "this key was revoked"),
                    "banned" => new IdentityException(IdentityErrorKind.Forbidden, "banned", "this user is banned"),
                    _ => new IdentityException(IdentityErrorKind.Unauthorized, "invalid_token", "the credential is not valid: log in again or use a valid API key"),
                };
            }
            if (!readBody)
            {
                return await handle(caller, default);
            }
            using var body = await ReadBodyAsync(context);
            return await handle(caller, body.RootElement);
        });

    private static async Task RunAsync(HttpContext context, Func<Task<(int Status, Action<Utf8JsonWriter> Write)>> run)
    {
        int status;
        Action<Utf8JsonWriter> write;
        string? retryAfter = null;
        try
        {
            (status, write) = await run();
        }
        catch (IdentityException ex)
        {
            status = ex.Kind switch
            {
                IdentityErrorKind.Unauthorized => StatusCodes.Status401Unauthorized,
                IdentityErrorKind.Forbidden => StatusCodes.Status403Forbidden,
                IdentityErrorKind.NotFound => StatusCodes.Status404NotFound,
                IdentityErrorKind.Conflict => StatusCodes.Status409Conflict,
                IdentityErrorKind.Gone => StatusCodes.Status410Gone,
                IdentityErrorKind.TooManyRequests => StatusCodes.Status429TooManyRequests,
                _ => StatusCodes.Status400BadRequest,
            };
            retryAfter = ex.RetryAfterSeconds?.ToString(System.Globalization.CultureInfo.InvariantCulture);
            write = w =>
            {
                w.WriteString("error", ex.Code);
                w.WriteString("message", ex.Message);
                if (ex.RetryAfterSeconds is { } s)
                {
                    w.WriteNumber("retry_after_s", s);
                }
            };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A bug, not bad input: log it (redacted by the logging pipeline) and answer plainly.
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Parley.Server.Identity")
                .LogError(ex, "Identity request {Method} {Path} failed", context.Request.Method, context.Request.Path.Value);
            status = StatusCodes.Status500InternalServerError;
            write = static w =>
            {
                w.WriteString("error", "internal_error");
                w.WriteString("message", "the hub failed to handle this request; it is logged. Try again.");
            };
        }
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        if (status == StatusCodes.Status401Unauthorized)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }
        if (retryAfter is not null)
        {
            context.Response.Headers.RetryAfter = retryAfter;
        }
        await using var writer = new Utf8JsonWriter(context.Response.Body);
        writer.WriteStartObject();
        write(writer);
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }

    private static async Task<JsonDocument> ReadBodyAsync(HttpContext context)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxBodyBytes;
        }
        if (context.Request.ContentLength is > MaxBodyBytes)
        {
            throw Bad("too_large", "the request body is over 64 KiB");
        }
        try
        {
            var document = await JsonDocument.ParseAsync(context.Request.Body, new JsonDocumentOptions { MaxDepth = 16 }, context.RequestAborted);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                throw Bad("invalid_json", "the request body must be a JSON object");
            }
            return document;
        }
        catch (JsonException)
        {
            throw Bad("invalid_json", "the request body is not valid JSON");
        }
        catch (BadHttpRequestException)
        {
            throw Bad("too_large", "the request body is over 64 KiB");
        }
    }

    private static string? Address(HttpContext context) => context.Connection.RemoteIpAddress?.ToString();

    private static IdentityException Bad(string code, string message) => new(IdentityErrorKind.BadRequest, code, message);

    private static string RequiredString(JsonElement body, string name) =>
        OptionalString(body, name) ?? throw Bad("invalid_request", $"'{name}' is required (a string)");

    private static string? OptionalString(JsonElement body, string name)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Bad("invalid_request", $"'{name}' must be a string");
    }

    private static long RequiredInt64(JsonElement body, string name) =>
        OptionalInt64(body, name) ?? throw Bad("invalid_request", $"'{name}' is required (an integer)");

    private static long? OptionalInt64(JsonElement body, string name)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) ? n : throw Bad("invalid_request", $"'{name}' must be an integer");
    }

    private static byte[] RequiredBase64Url(JsonElement body, string name)
    {
        var text = RequiredString(body, name);
        if (text.Length > 1024 || !Base64Url.IsValid(text))
        {
            throw Bad("invalid_request", $"'{name}' must be base64url");
        }
        return Base64Url.DecodeFromChars(text);
    }

    // ---- response shapes ----

    private static Action<Utf8JsonWriter> TokenWriter(TokenPair pair) => w =>
    {
        w.WriteString("token_type", "Bearer");
        w.WriteString("access_token", pair.AccessToken);
        w.WriteNumber("expires_at", pair.AccessExpiresAtMs);
        w.WriteString("refresh_token", pair.RefreshToken);
        w.WriteNumber("refresh_expires_at", pair.RefreshExpiresAtMs);
        w.WriteString("name", pair.UserName);
        w.WriteString("role", HubRoles.Name(pair.Role));
    };
}
